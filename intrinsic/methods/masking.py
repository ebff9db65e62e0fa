"""Masking (Zhao et al. 2020): learn a binary mask over frozen pretrained weights.

In each of the top ``knob`` encoder layers, the weight matrices of W_Q, W_K, W_V, the attention
output, and the FFN's in and out projections (not their biases) become W' = W ⊙ m with
m = 1[s ≥ τ] (``torch.nn.utils.parametrize``), s a real-valued score per weight trained through a
straight-through estimator (:class:`BinaryMask`: ∂m/∂s := 1). Everything else is frozen; the head
follows the head policy.

Initial mask: in every masked matrix exactly round(keep · numel) entries, drawn with ``seed``, are
kept (scores τ + τ), the others dropped (scores τ − τ = 0); ``keep`` defaults to 0.95 (the notes:
an initial sparsity of 3–10 % works, 95 % hurts). So the built model does *not* compute the
pretrained function: 5 % of the masked weights are zero from the start.

Counts, with d the hidden size, I the FFN size, M = knob · (4d² + 2dI) the masked weights and H
the head's numel under ``head="train"`` (else 0): trainable = M + H (one score per masked weight),
stored = ⌈M / 32⌉ + H (the mask's M bits, in float32 numbers), head = H.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from .base import Counts, Knob
from .bitfit import FreezingMethod, head_size

KEEP = 0.95  # initial keep fraction
THRESHOLD = 5e-3  # τ, Zhao et al.'s
MASKED = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
          "intermediate.dense", "output.dense")  # Linear modules of one BERT-style layer


class BinaryMask(torch.autograd.Function):
    """m = 1[s ≥ τ] (s's shape and dtype) forward; the straight-through gradient ∂L/∂s = ∂L/∂m."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: float) -> torch.Tensor:
        return (scores >= threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class ScoreMask(nn.Module):
    """Parametrization of one weight: W ↦ W ⊙ 1[s ≥ τ], with ``scores`` s of W's shape."""

    def __init__(self, scores: torch.Tensor, threshold: float):
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.threshold = threshold

    def mask(self) -> torch.Tensor:
        return BinaryMask.apply(self.scores, self.threshold)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask()


def encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    """The BERT-style ``encoder.layer`` list of ``model``'s base model (each layer holding the
    :data:`MASKED` Linear modules), or None."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if isinstance(layers, nn.ModuleList) and len(layers) and all(
            isinstance(_submodule(layer, path), nn.Linear) for layer in layers for path in MASKED):
        return layers
    return None


def _submodule(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


def initial_scores(shape: torch.Size, keep: float, threshold: float, generator: torch.Generator) -> torch.Tensor:
    """Scores of ``shape`` with exactly round(keep · numel) entries at 2τ (kept), the rest at 0."""
    n = math.prod(shape)
    kept = torch.randperm(n, generator=generator)[: round(keep * n)]
    scores = torch.zeros(n)
    scores[kept] = 2 * threshold
    return scores.view(shape)


class Masking(FreezingMethod):
    """Masking; the knob is the number of encoder layers masked, counted from the top."""

    name = "masking"
    knob = Knob("layers", 1, None, 3,
                "encoder layers masked, from the top (3: all of paraphrase-MiniLM-L3-v2's; top layers matter "
                "most); at most the model's layers")
    default_lrs = (
        1e-4,  # a score crosses τ = 5e-3 after ~50 Adam steps of one sign: few flips, near the initial mask
        1e-3,  # ~5 steps: the mask can change within a short run
    )
    starts_at_pretrained = False  # 5 % of the masked weights start at zero
    head_policies = ("frozen", "train")

    def __init__(self, keep: float = KEEP, threshold: float = THRESHOLD):
        if not 0 < keep <= 1 or not threshold > 0:
            raise ConfigError("keep", f"must be in (0, 1] with a positive threshold, got {keep}, {threshold}")
        self.keep, self.threshold = keep, threshold

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        layers = encoder_layers(model)
        return None if layers is None else len(layers)

    def unsupported(self, model: nn.Module) -> str | None:
        if encoder_layers(model) is None:
            return (f"masking needs BERT-style encoder layers (encoder.layer[i] with {', '.join(MASKED)} as "
                    f"Linear modules), which {type(model).__name__} does not have")
        return None

    def adapt(self, model: nn.Module, knob: int | None, head_names: list[str], seed: int) -> None:
        """Mask the top ``knob`` layers of the frozen ``model`` in place (initial masks drawn with ``seed``)."""
        layers = encoder_layers(model)
        if knob > len(layers):
            raise ConfigError("knob", f"of masking (layers) must be at most the model's {len(layers)} layers, "
                                      f"got {knob}")
        generator = torch.Generator().manual_seed(seed)
        for layer in layers[len(layers) - knob:]:
            for path in MASKED:
                linear = layer.get_submodule(path)
                scores = initial_scores(linear.weight.shape, self.keep, self.threshold, generator).to(linear.weight)
                parametrize.register_parametrization(linear, "weight", ScoreMask(scores, self.threshold))

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        d, ffn = built.config.hidden_size, built.config.intermediate_size
        masked = knob * (4 * d * d + 2 * d * ffn)
        heads = head_size(built, head, head_names)
        return Counts(trainable=masked + heads, stored=math.ceil(masked / 32) + heads, head=heads)
