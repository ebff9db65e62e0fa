"""Fine-tuning methods built on Hugging Face ``peft``: LoRA, prompt tuning, P-tuning, IA³, VeRA, FourierFT, Uni-LoRA.

Each method wraps the classifier with one ``peft`` config (``peft`` is imported only when a method is built) and then
applies this project's head policy (:func:`~intrinsic.methods.base.apply_head_policy`) to the original head tensors:
peft's sequence-classification mode would instead train a copy of ``classifier`` (``modules_to_save``) and leave a
freshly initialised pooler frozen. The built model is a ``PeftModel`` called like the Hugging Face model
(``built(input_ids=..., attention_mask=..., labels=...)``).

The tuners adapt BERT/RoBERTa-style encoders: ``query``/``value`` (LoRA, VeRA, FourierFT, Uni-LoRA) or
``key``/``value`` and the feed-forward's second matrix (IA³) in each of the L layers, all ``nn.Linear``; with d the
hidden size and d_ff the feed-forward width, each ``counts`` is the closed form its class's docstring states (not a
count of what requires grad, so that the contract tests check the formula). Randomness (initial factors, prompts,
spectral positions, projections) comes from ``seed`` alone: the global RNG is seeded inside a fork of it and peft's
own seed fields get ``seed``.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from .base import Counts, Knob, Method, apply_head_policy

QUERY_VALUE = r"\.(query|value)$"
KEY_VALUE = r"\.(key|value)$"
FFN_OUTPUT = r"(?<!attention)\.output\.dense$"  # the feed-forward's second matrix, not attention.output.dense


def _peft(method: str):
    try:
        import peft
    except ImportError:
        raise ConfigError("method", f"{method} needs the peft package: pip install 'intrinsic[peft]'") from None
    return peft


def _describe(model: nn.Module) -> str:
    return f"{type(model).__name__} ({getattr(model.config, 'model_type', 'no model_type')})"


@contextmanager
def _seeded(model: nn.Module, seed: int):
    """The global RNGs seeded with ``seed`` inside, restored after (the caller's stream is not consumed)."""
    devices = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _head_size(built: nn.Module, head_names: list[str]) -> int:
    params = dict(built.get_base_model().named_parameters())
    return sum(params[name].numel() for name in head_names)


class _PeftMethod(Method):
    """Shared build and counts; a subclass gives its peft config (:meth:`_config`) and closed form (:meth:`_size`)."""

    requires: ClassVar[str | None] = "peft"
    head_policies: ClassVar[tuple[str, ...]] = ("frozen", "train")

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        peft = _peft(self.name)
        knob = self.check(knob, head)
        reason = self.unsupported(model)
        if reason is not None:
            raise ConfigError("method", reason)
        limit = self._knob_limit(model.config)
        if limit is not None and knob > limit:
            raise ConfigError("knob", f"of {self.name} ({self.knob.name}) must be at most {limit} for "
                                      f"{_describe(model)}, got {knob}")
        pretrained = list(model.parameters())
        with _seeded(model, seed), warnings.catch_warnings():
            # peft 0.21 reads an attribute transformers 5 renamed; nothing of ours uses it.
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            built = self._wrap(peft, model, knob, seed)
        for p in pretrained:  # peft freezes differently per method type; ours is: only the method's own numbers
            p.requires_grad_(False)
        apply_head_policy(built.get_base_model(), head, head_names)
        return built

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        trainable, stored = self._size(built.config, knob)
        head_size = _head_size(built, head_names) if head == "train" else 0
        return Counts(trainable + head_size, stored + head_size, head_size)

    def _knob_limit(self, config) -> int | None:
        """The largest knob that makes sense for a model with ``config`` (None: no limit)."""
        return None

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        return self._knob_limit(model.config)

    def _wrap(self, peft, model: nn.Module, knob: int | None, seed: int) -> nn.Module:
        return peft.get_peft_model(model, self._config(peft, model, knob, seed))

    def _config(self, peft, model: nn.Module, knob: int | None, seed: int):
        raise NotImplementedError

    def _size(self, config, knob: int | None) -> tuple[int, int]:
        """``(trainable, stored)`` of the method itself (without the head), from the model's config."""
        raise NotImplementedError


class _Tuner(_PeftMethod):
    """A peft tuner injected into named ``nn.Linear`` layers; ``targets`` are (name pattern, matrices per layer)."""

    targets: ClassVar[tuple[tuple[str, int], ...]] = ((QUERY_VALUE, 2),)

    @staticmethod
    def _shape(config, pattern: str) -> tuple[int, int]:
        """(d_in, d_out) of the matrices matching ``pattern`` in a BERT/RoBERTa layer."""
        d = config.hidden_size
        return (config.intermediate_size, d) if pattern == FFN_OUTPUT else (d, d)

    def _matrices(self, config):
        """(d_in, d_out, how many) per target pattern."""
        return [(*self._shape(config, pattern), per_layer * config.num_hidden_layers)
                for pattern, per_layer in self.targets]

    def unsupported(self, model: nn.Module) -> str | None:
        config = model.config
        if not all(hasattr(config, a) for a in ("hidden_size", "num_hidden_layers", "intermediate_size")):
            return (f"{self.name} adapts BERT/RoBERTa-style layers; {_describe(model)} has no hidden_size, "
                    "num_hidden_layers and intermediate_size in its config")
        for pattern, per_layer in self.targets:
            found = [m for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.search(pattern, n)]
            d_in, d_out = self._shape(config, pattern)
            expected = per_layer * config.num_hidden_layers
            if len(found) != expected or any((m.in_features, m.out_features) != (d_in, d_out) for m in found):
                return (f"{self.name} adapts {per_layer} Linear layer(s) per layer named like {pattern!r} "
                        f"({d_in} → {d_out}), as in BERT/RoBERTa; {_describe(model)} has {len(found)} such "
                        f"layers, not {expected} of that shape")
        return None

    def _target_names(self, model: nn.Module) -> list[str]:
        patterns = [pattern for pattern, _ in self.targets]
        return [n for n, m in model.named_modules()
                if isinstance(m, nn.Linear) and any(re.search(p, n) for p in patterns)]


class LoRA(_Tuner):
    """LoRA (Hu et al. 2021): W_q and W_v of every layer gain ΔW = (α/r)·B·A, A (r × d_in) and B (d_out × r)
    trained, the pretrained weights frozen.

    Knob: the rank r (at most min(d_in, d_out) = d). Count: 2 matrices × L × r·(d_in + d_out) = 4·L·r·d,
    stored = trainable. α = 8 for every r (peft's default, and Hu et al.'s choice: α is set to the first r tried
    and not retuned, so α/r scales the update down as r grows); dropout 0. A is Kaiming-uniform from the seed and
    B = 0, so the model starts as the pretrained one.
    """

    name = "lora"
    knob = Knob("r", 1, None, 8, "LoRA rank of the query and value updates")
    default_lrs = (1e-4, 1e-3)  # the notes' LoRA range (Hu et al. use 4e-4 to 5e-4 on RoBERTa-base)
    starts_at_pretrained = True
    alpha: ClassVar[float] = 8.0

    def _knob_limit(self, config) -> int | None:
        return min(min(d_in, d_out) for d_in, d_out, _ in self._matrices(config))

    def _config(self, peft, model, knob, seed):
        return peft.LoraConfig(r=knob, lora_alpha=self.alpha, lora_dropout=0.0, bias="none",
                               target_modules=self._target_names(model), init_lora_weights=True)

    def _size(self, config, knob):
        n = sum(count * knob * (d_in + d_out) for d_in, d_out, count in self._matrices(config))
        return n, n


class IA3(_Tuner):
    """IA³ (Liu et al. 2022): learned vectors rescale the keys, the values (the outputs of W_k and W_v) and the
    feed-forward's intermediate activations (the input of its second matrix, ``output.dense``) in every layer.

    No knob (fixed size). Count: L·(2d + d_ff), stored = trainable. Targets are named explicitly: peft's default
    targets for BERT/RoBERTa (``key``, ``value``, ``output.dense``, the last as a feed-forward module) match names
    by suffix, so they also rescale the input of ``attention.output.dense`` (L·d more), which the paper does not.
    The vectors start at ones, so the model starts as the pretrained one.
    """

    name = "ia3"
    knob = None
    default_lrs = (3e-3, 3e-2)  # T-Few trains IA³ at 3e-3; vectors around 1 tolerate a decade more
    starts_at_pretrained = True
    targets = ((KEY_VALUE, 2), (FFN_OUTPUT, 1))

    def _config(self, peft, model, knob, seed):
        ffn = [n for n in self._target_names(model) if re.search(FFN_OUTPUT, n)]
        return peft.IA3Config(target_modules=self._target_names(model), feedforward_modules=ffn, init_ia3_weights=True)

    def _size(self, config, knob):
        n = sum(count * (d_in if pattern == FFN_OUTPUT else d_out)
                for (pattern, _), (d_in, d_out, count) in zip(self.targets, self._matrices(config), strict=True))
        return n, n


class VeRA(_Tuner):
    """VeRA (Kopiczko et al. 2024): W_q and W_v of every layer gain ΔW = Λ_b·B·Λ_d·A, where A (r × d_in) and
    B (d_out × r) are frozen random matrices shared by all layers and the diagonal Λ_d (r) and Λ_b (d_out) are
    trained.

    Knob: the rank r of the shared matrices (may exceed d; the paper uses 1024 on RoBERTa-base). Count: Σ over the
    2L adapted matrices of (d_out + r) = 2·L·(d + r). Stored = trainable: A and B are regenerated from the seed
    (peft's ``projection_prng_key``). Λ_b = 0 and Λ_d = 0.1 at start, so the model starts as the pretrained one.
    """

    name = "vera"
    knob = Knob("r", 1, None, 256, "rank of VeRA's shared frozen random matrices")
    default_lrs = (4e-3, 1e-2)  # Kopiczko et al.'s range on RoBERTa-base
    starts_at_pretrained = True

    def _config(self, peft, model, knob, seed):
        return peft.VeraConfig(r=knob, target_modules=self._target_names(model), projection_prng_key=seed,
                               vera_dropout=0.0, d_initial=0.1, init_weights=True)

    def _size(self, config, knob):
        n = sum(count * (d_out + knob) for _, d_out, count in self._matrices(config))
        return n, n


class FourierFT(_Tuner):
    """FourierFT (Gao et al. 2024): W_q and W_v of every layer gain ΔW = s·Re(IDFT₂(S)), where S is zero but for
    n_frequency learned coefficients at entries drawn at random (from the seed, peft's ``random_loc_seed``); s = 150
    (peft's default, the paper's setting for RoBERTa).

    Knob: n_frequency per matrix (at most d_in·d_out). Count: n_frequency × 2L adapted matrices; stored = the
    coefficients only (the positions come from the seed). The coefficients start at 0 (peft's ``init_weights=True``;
    peft's default, like the paper's code, draws them from N(0, 1), which starts away from the pretrained model
    by ΔW entries of about s·√n / (d_in·d_out)); ΔW is linear in them, so training is not stalled at 0, and the model
    starts as the pretrained one.
    """

    name = "fourierft"
    knob = Knob("n_frequency", 1, None, 1000, "learned spectral coefficients per adapted matrix", start=8)
    default_lrs = (5e-2, 1e-1)  # Gao et al.'s range on RoBERTa-base (IDFT₂'s 1/(d_in·d_out) calls for large rates)
    starts_at_pretrained = True
    scaling: ClassVar[float] = 150.0

    def _knob_limit(self, config) -> int | None:
        return min(d_in * d_out for d_in, d_out, _ in self._matrices(config))

    def _config(self, peft, model, knob, seed):
        return peft.FourierFTConfig(n_frequency=knob, scaling=self.scaling, random_loc_seed=seed,
                                    target_modules=self._target_names(model), init_weights=True)

    def _size(self, config, knob):
        n = sum(count * knob for _, _, count in self._matrices(config))
        return n, n


class UniLoRA(_Tuner):
    """Uni-LoRA (Li et al. 2025): rank-r LoRA factors on W_q and W_v of every layer whose entries are all read
    from one trained vector θ_d: each LoRA entry is θ_d[i]/√(count of i) at an index i fixed by the seed (peft's
    ``proj_seed``, each index used ⌊D/d⌋ or ⌈D/d⌉ times over the D LoRA entries); no α scaling. The closest
    relative of the intrinsic-dimension θ_d.

    Knob: theta_d_length, which is the count itself (at most D = 2L·r·(d_in + d_out), beyond which entries of θ_d
    would feed nothing); r = 4 (peft's default). Stored = trainable = theta_d_length. θ_d starts uniform in
    ±0.02 (peft's init; zeros would give both factors zero gradient), so ΔW = B·A ≠ 0 at start and the model does
    not start exactly as the pretrained one.
    """

    name = "unilora"
    knob = Knob("theta_d_length", 1, None, 256, "length of Uni-LoRA's one trained vector (the trainable count)",
                start=16)
    default_lrs = (5e-3, 5e-2)  # the authors' GLUE rate for θ_d (5e-3, at d = 23,040), and a decade above for small d
    starts_at_pretrained = False
    rank: ClassVar[int] = 4

    def _knob_limit(self, config) -> int | None:
        return sum(count * self.rank * (d_in + d_out) for d_in, d_out, count in self._matrices(config))

    def _config(self, peft, model, knob, seed):
        return peft.UniLoraConfig(r=self.rank, theta_d_length=knob, proj_seed=seed, unilora_dropout=0.0,
                                  target_modules=self._target_names(model), init_weights=True)

    def _size(self, config, knob):
        return knob, knob


class _Prompt(_PeftMethod):
    """Soft prompts prepended to the input embeddings (peft's sequence-classification prompt learning).

    The attention mask is extended by the l prompt positions (token type ids by zeros); the tokens' positions are
    shifted by l (BERT: 0…l+n−1; RoBERTa: from padding_idx + 1, sequential, so right padding is unaffected), so
    l + the longest input must fit the model's position embeddings.
    """

    knob = Knob("num_virtual_tokens", 1, None, 20, "soft prompt length l (virtual tokens)")
    starts_at_pretrained = False

    def unsupported(self, model: nn.Module) -> str | None:
        if hasattr(model, "score"):
            return (f"{self.name} through peft passes the model only input embeddings, so {_describe(model)}, which "
                    "pools the last token that is not a pad (found from input_ids), would pool a pad")
        embeddings = model.get_input_embeddings()
        if getattr(embeddings, "embedding_dim", None) != getattr(model.config, "hidden_size", None):
            return f"{self.name} needs word embeddings of the hidden size; {_describe(model)} has none such"
        return None

    def _wrap(self, peft, model, knob, seed):
        built = peft.get_peft_model(model, self._config(peft, model, knob, seed))
        # SEQ_CLS adds the head to modules_to_save: a trained copy wrapped around the original. Put the original
        # back, so that the head policy decides, on the tensors the model was given.
        wrapper_type = peft.utils.ModulesToSaveWrapper
        wrappers = [(n, m) for n, m in built.base_model.named_modules() if isinstance(m, wrapper_type)]
        for name, wrapper in wrappers:
            parent, _, child = name.rpartition(".")
            setattr(built.base_model.get_submodule(parent), child, wrapper.original_module)
        built.active_peft_config.modules_to_save = None
        return built


class PromptTuning(_Prompt):
    """Prompt tuning (Lester et al. 2021): l soft token embeddings prepended to the input are trained.

    Knob: l (virtual tokens). Count: l·d, stored = trainable. Initialised at random (peft's ``RANDOM``: N(0, 1)
    entries, from the seed); the prompts change the input, so the model does not start as the pretrained one.
    """

    name = "prompt-tuning"
    default_lrs = (3e-2, 3e-1)  # Lester et al. train prompts at 0.3; a decade below for AdamW

    def _config(self, peft, model, knob, seed):
        return peft.PromptTuningConfig(task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=knob,
                                       prompt_tuning_init=peft.PromptTuningInit.RANDOM)

    def _size(self, config, knob):
        n = knob * config.hidden_size
        return n, n


class PTuning(_Prompt):
    """P-tuning (Liu et al. 2021), peft's ``PromptEncoderConfig``: l soft prompts produced by a trained prompt
    encoder, an embedding of l inputs (l × d) through an MLP d → d → d → d (ReLU between, biases).

    Knob: l (virtual tokens). Trainable: l·d + 3d² + 3d (embedding and MLP); stored: l·d (only the encoder's
    output is needed afterwards). Encoder weights from the seed; the model does not start as the pretrained one.
    """

    name = "p-tuning"
    default_lrs = (1e-3, 1e-2)  # the prompt encoder is an MLP (peft's P-tuning examples use 1e-3)

    def _config(self, peft, model, knob, seed):
        d = model.config.hidden_size
        return peft.PromptEncoderConfig(task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=knob,
                                        encoder_reparameterization_type="MLP", encoder_hidden_size=d)

    def _size(self, config, knob):
        d = config.hidden_size
        return knob * d + 3 * d * d + 3 * d, knob * d
