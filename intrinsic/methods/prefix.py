"""Prefix tuning (Li & Liang 2021) on BERT-style encoders: ``prefix-tuning``.

Every layer's self-attention attends to l learned key vectors and l learned value vectors before the
sequence's own: the trainable tensor :attr:`PrefixModel.prefix` has shape (L, 2, l, d), 2·l·d numbers
per layer, trained directly (no MLP reparameterisation, so trainable = stored = 2·l·d·L plus a
trained head). The prefix starts as the keys and values the frozen model computes for l seeded random
vocabulary tokens (Li & Liang §7.2: activations of real words train better than random vectors);
it therefore changes attention from the start (``starts_at_pretrained`` is False).

How the prefix gets in (transformers 5.24). ``BertSelfAttention`` (RoBERTa's is a copy) computes
``key = self.key(h).view(batch, seq, heads, head_dim)``, so a hook on the key/value projections
cannot lengthen them; but when given a ``cache`` it runs ``key, value = cache.update(key, value,
layer_idx)``, which for a :class:`~transformers.DynamicCache` is ``cat([cached, new], dim=-2)``.
So each call builds a fresh ``DynamicCache`` holding the prefix (updating it in place is how the
layers consume it, hence fresh every call) and passes it as ``cache=``; gradients reach the prefix
through the concatenation. Two things the cache changes besides that:

- the attention mask: the wrapper prepends l ones (:attr:`PrefixModel.prefix_mask`) to the 2-D
  mask; ``create_bidirectional_mask`` takes the key length from the mask's width when it is not
  given the cache (the path transformers keeps for prefix tuning);
- position ids: ``BertModel`` passes ``cache_length = l`` to its embeddings, which would shift BERT's
  positions to l, l+1, … and RoBERTa's to padding_idx + 1 + l, …. A forward pre-hook on the
  embeddings sets ``cache_length`` back to 0, so positions are the model's own rule unchanged
  (BERT 0, 1, …; RoBERTa padding_idx + 1, … with padded positions kept at padding_idx), whatever
  ``input_ids``, ``inputs_embeds`` or ``position_ids`` the caller passes. The hook fails loudly if
  transformers stops passing ``cache_length`` by keyword, instead of silently shifting positions.

This is exact: with the prefix masked out (``prefix_mask`` all 0) the model computes the pretrained
logits (tests/test_methods_prefix.py). peft's own PrefixTuning does not run on BERT/RoBERTa with
transformers 5.x (it passes ``past_key_values``, now ``cache``, and does not correct positions).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers import DynamicCache

from .adapters import bert_layers, frozen_and_checked, head_size, no_bert_layers_reason
from .base import Counts, Knob, Method, apply_head_policy


def _positions_as_without_prefix(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook on BERT/RoBERTa embeddings: ``cache_length`` 0, so the prefix shifts no position."""
    if "cache_length" not in kwargs:
        raise RuntimeError(f"{type(module).__name__} was called without cache_length=; this transformers version "
                           "passes it another way, and prefix-tuning can no longer keep positions unshifted")
    return args, {**kwargs, "cache_length": 0}


@torch.no_grad()
def real_word_prefix(model: nn.Module, length: int, seed: int) -> torch.Tensor:
    """The keys and values, shape (L, 2, length, d), that the frozen ``model`` (in eval mode) computes
    in every layer for ``length`` random non-padding vocabulary tokens drawn from ``seed``; run in rows
    short enough for the model's position table."""
    config = model.config
    row = min(length, config.max_position_embeddings - 2)  # RoBERTa's positions start at padding_idx + 1 = 2
    rows = -(-length // row)
    generator = torch.Generator().manual_seed(seed)
    pad = config.pad_token_id
    ids = torch.randint(0, config.vocab_size - (pad is not None), (rows, row), generator=generator)
    if pad is not None:
        ids += (ids >= pad).long()  # skip the padding token
    captured: dict[tuple[int, int], torch.Tensor] = {}  # (layer, 0 key | 1 value) -> (length, d)

    def keep(key: tuple[int, int]):
        def hook(_module, _args, output):
            captured[key] = output.reshape(-1, output.shape[-1])[:length]
        return hook

    handles = [projection.register_forward_hook(keep((i, j)))
               for i, layer in enumerate(bert_layers(model))
               for j, projection in enumerate((layer.attention.self.key, layer.attention.self.value))]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model.base_model(input_ids=ids.to(device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    layers = len(handles) // 2
    return torch.stack([torch.stack([captured[i, 0], captured[i, 1]]) for i in range(layers)]).float()


class PrefixModel(nn.Module):
    """``model`` whose every self-attention layer also attends to :attr:`prefix`; called like ``model``.

    ``prefix``: (L, 2, l, d), per layer the l keys and the l values (d = heads · head_dim).
    ``prefix_mask``: (l,), 1 where a prefix position is attended (all 1; 0 masks it out, an ablation
    that restores the pretrained function exactly). Accepts a 2-D ``attention_mask`` (batch, seq) or none.
    """

    def __init__(self, model: nn.Module, prefix: torch.Tensor):
        super().__init__()
        self.model = model
        self.prefix = nn.Parameter(prefix)
        self.register_buffer("prefix_mask", torch.ones(prefix.shape[2], dtype=torch.long, device=prefix.device),
                             persistent=False)
        model.base_model.embeddings.register_forward_pre_hook(_positions_as_without_prefix, with_kwargs=True)

    @property
    def config(self):
        return self.model.config

    def cache(self, batch: int) -> DynamicCache:
        """A fresh cache holding the prefix of every layer, keys and values (batch, heads, l, head_dim)."""
        layers, _, length, d = self.prefix.shape
        heads = self.config.num_attention_heads
        per_head = self.prefix.view(layers, 2, length, heads, d // heads).transpose(2, 3)
        cache = DynamicCache()
        for i in range(layers):
            shape = (batch, heads, length, d // heads)
            cache.update(per_head[i, 0].expand(shape), per_head[i, 1].expand(shape), i)
        return cache

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
        tokens = input_ids if input_ids is not None else inputs_embeds
        batch, length = tokens.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=tokens.device)
        if attention_mask.ndim != 2:
            raise ValueError(f"prefix-tuning takes a 2-D attention_mask (batch, seq), got shape "
                             f"{tuple(attention_mask.shape)}")
        prefix_mask = self.prefix_mask.to(attention_mask.dtype).expand(batch, -1)
        return self.model(input_ids=input_ids, attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
                          inputs_embeds=inputs_embeds, cache=self.cache(batch), **kwargs)


class PrefixTuning(Method):
    """Learned keys and values prepended in every layer (see the module doc)."""

    name = "prefix-tuning"
    knob = Knob("l", 1, None, 10, "prefix length: keys and values per layer (Li & Liang's table-to-text setting)")
    default_lrs = (
        1e-3,  # the prefix starts at real keys/values, so moderate steps already move attention
        1e-2,  # direct (un-reparameterised) prefixes, as in P-tuning v2's grid, often need the larger step
    )
    starts_at_pretrained = False
    head_policies = ("frozen", "train")

    def unsupported(self, model: nn.Module) -> str | None:
        reason = no_bert_layers_reason(model, self.name, "a cache= argument read by attention.self")
        if reason is not None:
            return reason
        if model.config.is_decoder:
            return f"{self.name} supports BERT-style encoders; {type(model).__name__} is configured as a decoder"
        embeddings = getattr(model.base_model, "embeddings", None)
        if embeddings is None or "cache_length" not in inspect.signature(embeddings.forward).parameters:
            return (f"{self.name} keeps positions unshifted through the embeddings' cache_length argument, which "
                    f"{type(model).__name__}'s embeddings do not take")
        return None

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        length = frozen_and_checked(self, model, knob, head)
        apply_head_policy(model, head, head_names)
        return PrefixModel(model, real_word_prefix(model, length, seed))

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        length = self.check(knob, head)
        config = built.config
        head_count = head_size(built.model, head, head_names)
        trainable = 2 * length * config.hidden_size * config.num_hidden_layers + head_count
        return Counts(trainable=trainable, stored=trainable, head=head_count)
