"""PaFi and HiWi (Liao, Meng & Monz 2023): fine-tuning that adds no inference cost.

Both reparameterise pretrained weights with :mod:`torch.nn.utils.parametrize`, so the built model is
the Hugging Face model itself, called as usual, and :func:`merge` folds the update back into plain
weights (``remove_parametrizations(leave_parametrized=True)``): the same architecture, no extra cost.

**PaFi** (``pafi``, knob ``k``) trains the k pretrained entries of smallest |θ₀|. The authors'
code is not released; our selection rule:

- *eligible*: the weight matrices of the transformer layers (every ``nn.Linear`` and GPT-2 ``Conv1D``
  weight under the model's layer list: query, key, value, attention output, both FFN matrices).
  Not eligible: embeddings (their padding rows are exact zeros and would be picked first),
  LayerNorms, biases, the pooler and the head;
- *global*: the k smallest |θ₀| over all eligible entries together, not k per tensor;
- *ties*: broken by position, earlier tensor (``named_parameters`` order) then lower flat index,
  i.e. the first k of a stable sort; so the mask is recomputable from θ₀ and costs nothing stored.

Each selected tensor ``W`` becomes ``W₀ + scatter(index, δ)`` (:class:`SparseDelta`); the δ's,
k numbers in all, are the only trainable tensors; δ = 0 at start. Counts: trainable = stored = k.

**HiWi** (``hiwi``, knob ``r``) feeds an adapter the pretrained FFN *weights* instead of hidden
states: ``M ← M + f(M A) B`` for both FFN matrices of every layer (BERT's ``intermediate.dense`` and
``output.dense``, GPT-2's ``mlp.c_fc``/``mlp.c_proj``, GPT-NeoX's ``mlp.dense_h_to_4h``/``dense_4h_to_h``).
``M`` is the matrix in the paper's ``x·M`` orientation, ``d_in × d_out`` (GPT-2's ``Conv1D.weight``,
the transpose of ``nn.Linear.weight``): its rows play the tokens, so ``A ∈ R^{d_out×r}`` and
``B ∈ R^{r×d_out}``, **2·r·d_out numbers per matrix** as in the notes; for a BERT layer that is
``2r(d_ff + d)`` (equal to what the other orientation would give per layer, not per matrix).
``f`` is ReLU; ``B = 0`` at start, so the model starts pretrained; ``A`` is seeded and scaled so that
``M A`` has unit-scale entries, as the LayerNormed hidden states an ordinary adapter sees.
Stored: the merged FFN matrices, ``Σ d_in·d_out`` (the paper ships merged weights, not the adapter).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers.pytorch_utils import Conv1D

from ..errors import ConfigError
from .base import Counts, Knob
from .bitfit import FreezingMethod, head_size

# Each layer's FFN: (d → d_ff matrix, d_ff → d matrix), by architecture.
FFN_MATRICES = (("intermediate.dense", "output.dense"),  # BERT, RoBERTa
                ("mlp.c_fc", "mlp.c_proj"),  # GPT-2
                ("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"))  # GPT-NeoX


def layer_list(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The transformer's layers, as (qualified name, list): the longest plain ``nn.ModuleList``
    (BERT's ``encoder.layer``, GPT-2's ``transformer.h``, GPT-NeoX's ``gpt_neox.layers``), the first
    of equal length; None if the model has none."""
    lists = [(n, m) for n, m in model.named_modules() if type(m) is nn.ModuleList]
    return max(lists, key=lambda item: len(item[1]), default=None)


def weight_matrices(model: nn.Module, head_names: list[str]) -> list[tuple[str, nn.Module]]:
    """PaFi's eligible modules (``nn.Linear`` or ``Conv1D`` in the layer list, outside the head),
    as (qualified name, module) in ``named_modules`` order."""
    found = layer_list(model)
    if found is None:
        return []
    prefix, layers = found
    head = set(head_names)
    return [(f"{prefix}.{n}", m) for n, m in layers.named_modules()
            if isinstance(m, (nn.Linear, Conv1D)) and f"{prefix}.{n}.weight" not in head]


def smallest_entries(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """For each tensor, the sorted flat indices of its entries among the k of smallest |value| over
    all ``tensors`` together; ties go to the earlier tensor, then the lower flat index (the first k of
    a stable sort). The index tensors' lengths sum to k."""
    flat = torch.cat([t.detach().abs().flatten() for t in tensors])
    threshold = flat.kthvalue(k).values
    chosen = flat < threshold
    ties = (flat == threshold).nonzero().squeeze(1)
    chosen[ties[:k - int(chosen.sum())]] = True
    return [part.nonzero().squeeze(1) for part in chosen.split([t.numel() for t in tensors])]


class SparseDelta(nn.Module):
    """``W ↦ W + scatter(index, δ)``: ``δ`` (shape ``(m,)``, zeros at start) added at the flat
    positions ``index`` (shape ``(m,)``, distinct) of ``W``; every other entry passes unchanged, bit for bit."""

    def __init__(self, index: torch.Tensor, like: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index.to(like.device), persistent=False)  # recomputable from θ₀
        self.delta = nn.Parameter(torch.zeros(index.numel(), dtype=like.dtype, device=like.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.flatten().index_add(0, self.index, self.delta).view_as(weight)


class WeightAdapter(nn.Module):
    """``M ↦ M + relu(M A) B`` on the ``d_in × d_out`` matrix ``M`` (``transposed``: the weight is
    ``nn.Linear``'s ``d_out × d_in``, so ``M`` is its transpose); ``A`` is ``(d_out, r)``, ``B``
    ``(r, d_out)`` and zeros at start."""

    def __init__(self, down: torch.Tensor, transposed: bool):
        super().__init__()
        self.transposed = transposed
        self.down = nn.Parameter(down)
        self.up = nn.Parameter(torch.zeros(down.shape[1], down.shape[0], dtype=down.dtype, device=down.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        rows = weight.T if self.transposed else weight
        update = torch.relu(rows @ self.down) @ self.up
        return weight + (update.T if self.transposed else update)


def merge(model: nn.Module) -> nn.Module:
    """Fold every parametrization of ``model`` into a plain weight holding its current value (in
    place): what PaFi and HiWi built becomes the original architecture, with no extra inference cost
    (and a state dict with the original keys)."""
    for module in [m for m in model.modules() if parametrize.is_parametrized(m)]:
        for name in list(module.parametrizations):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def shape_in_out(module: nn.Module) -> tuple[int, int]:
    """(d_in, d_out) of an ``nn.Linear`` or a ``Conv1D``."""
    return (module.in_features, module.out_features) if isinstance(module, nn.Linear) else (module.nx, module.nf)


def ffn_matrices(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """HiWi's matrices: both FFN matrices (:data:`FFN_MATRICES`) of every layer, as (qualified name,
    module), layer by layer."""
    found = layer_list(model)
    if found is None:
        return []
    prefix, layers = found
    matrices = []
    for i, layer in enumerate(layers):
        names = dict(layer.named_modules())
        pair = next((p for p in FFN_MATRICES if all(name in names for name in p)), ())
        matrices += [(f"{prefix}.{i}.{name}", names[name]) for name in pair]
    return matrices


class PaFi(FreezingMethod):
    """The k entries of smallest |θ₀| of the layers' weight matrices (see the module doc)."""

    name = "pafi"
    knob = Knob("k", 1, None, 26_542, "entries trained: the k of smallest |θ₀| among the layers' weight matrices "
                "(default 26,542 = 0.5 % of paraphrase-MiniLM-L3-v2's 5,308,416)", start=128)
    # 1e-4: the entries are ordinary weights, and 1e-4 is full fine-tuning's usual rate …
    # … 1e-3: with so few entries moving (and all of them near zero), a larger step, as for BitFit.
    default_lrs = (1e-4, 1e-3)

    def unsupported(self, model: nn.Module) -> str | None:
        if not weight_matrices(model, []):
            return (f"{self.name} needs the weight matrices (nn.Linear or Conv1D) of a list of transformer layers; "
                    f"{type(model).__name__} has none")
        return None

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        return sum(m.weight.numel() for _, m in weight_matrices(model, head_names))

    def adapt(self, model: nn.Module, knob: int | None, head_names: list[str], seed: int) -> None:
        modules = [m for _, m in weight_matrices(model, head_names)]
        eligible = sum(m.weight.numel() for m in modules)
        if knob > eligible:
            raise ConfigError("knob", f"of {self.name} (k) must be at most {eligible:,}, the entries of "
                                      f"{type(model).__name__}'s layer weight matrices; got {knob:,}")
        for module, index in zip(modules, smallest_entries([m.weight for m in modules], knob), strict=True):
            if index.numel():
                parametrize.register_parametrization(module, "weight", SparseDelta(index, module.weight))

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        head_count = head_size(built, head, head_names)
        return Counts(trainable=knob + head_count, stored=knob + head_count, head=head_count)


class HiWi(FreezingMethod):
    """An adapter fed each layer's two pretrained FFN matrices (see the module doc)."""

    name = "hiwi"
    knob = Knob("r", 1, None, 8, "the adapter's bottleneck: A is d_out × r, B is r × d_out, per FFN matrix")
    # 1e-4 and 1e-3 span the usual rates of bottleneck adapters (1e-4 for larger r …
    # … 1e-3 for small r, as adapters and LoRA use); B starts at zero, so the first steps are small anyway.
    default_lrs = (1e-4, 1e-3)

    def unsupported(self, model: nn.Module) -> str | None:
        if not ffn_matrices(model):
            known = "; ".join(" and ".join(pair) for pair in FFN_MATRICES)
            return (f"{self.name} adapts the two FFN matrices of each layer ({known}); "
                    f"{type(model).__name__} has none of these (a gated FFN has three)")
        return None

    def adapt(self, model: nn.Module, knob: int | None, head_names: list[str], seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for _, module in ffn_matrices(model):
            weight = module.weight.detach()
            _, d_out = shape_in_out(module)
            # M A has entries of scale 1 when A ~ N(0, 1 / (d_out · rms(M)²)).
            scale = 1 / (math.sqrt(d_out) * max(weight.float().pow(2).mean().sqrt().item(), 1e-12))
            down = torch.randn(d_out, knob, generator=generator) * scale
            adapter = WeightAdapter(down.to(weight), transposed=isinstance(module, nn.Linear))
            parametrize.register_parametrization(module, "weight", adapter)

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        shapes = [shape_in_out(m) for _, m in ffn_matrices(built)]
        head_count = head_size(built, head, head_names)
        return Counts(trainable=sum(2 * knob * d_out for _, d_out in shapes) + head_count,
                      stored=sum(d_in * d_out for d_in, d_out in shapes) + head_count, head=head_count)
