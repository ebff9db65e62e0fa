"""Diff pruning (Guo, Rush & Kim 2021): a sparse task-specific difference added to frozen θ₀.

Which tensors: every parameter tensor of the model except the head's (embeddings, LayerNorms and
the pooler included), as in the paper, whose diff vector spans the whole pretrained model. The
head follows the head policy and is never gated. Tied tensors are refused (:meth:`unsupported`).

Two phases, each a full training run of the same length (the same ``train`` arguments, so diff
pruning costs two trainings):

1. **Gated diffs.** Each eligible tensor becomes θ = θ₀ + z ⊙ w (``torch.nn.utils.parametrize``),
   w starting at 0 (so the built model computes exactly θ₀'s function), with one hard-concrete
   gate per entry: in training mode s = σ(log u − log(1−u) + α), u ~ U(0, 1) drawn from the global
   generator (which the training loop seeds), z = clip(s·(r − l) + l, 0, 1); in evaluation mode the
   deterministic gate z = clip(σ(α)·(r − l) + l, 0, 1). The loss gains the expected L0 norm
   λ·Σ σ(α − log(−l/r)) (:meth:`DiffPruned.regularization`), and α is trained at its own rate
   (:meth:`DiffPruned.optimizer_groups`). The paper's group (per-tensor) penalty is not used.
2. **Fixed mask.** The k entries of largest |z ⊙ w| (deterministic z, over all tensors together;
   ties go to the earlier entry in parameter order) are kept and *continue from their phase-1
   values* z ⊙ w; every other entry is exactly θ₀ again. Only the k kept values are trained,
   without gates or penalty (:meth:`DiffPruned.fix_mask`, :meth:`DiffPruning.fit`).

Counts (E = the eligible tensors' numel, H = the head's numel under ``head="train"``, else 0):
trainable = 2E + H (w and α, while phase 1 trains), stored = k + H (the kept values; the positions
of a learned mask are not counted here), head = H.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError
from .base import Counts, Knob, Method, apply_head_policy
from .bitfit import head_size

LEFT, RIGHT = -1.5, 1.5  # the hard-concrete stretch interval (l, r)
ALPHA_INIT = 5.0  # σ(5)·3 − 1.5 > 1: every gate starts fully open
PENALTY = 1.25e-7  # λ
GATE_LR = 0.1  # AdamW rate of α, whatever rate the diffs train at


class GatedDiff(nn.Module):
    """Phase 1 parametrization of one tensor: θ₀ ↦ θ₀ + z ⊙ w; w, α and z have θ₀'s shape."""

    def __init__(self, original: torch.Tensor, alpha_init: float = ALPHA_INIT, left: float = LEFT,
                 right: float = RIGHT):
        super().__init__()
        self.w = nn.Parameter(torch.zeros_like(original))
        self.alpha = nn.Parameter(torch.full_like(original, alpha_init))
        self.left, self.right = left, right

    def gate(self, sample: bool) -> torch.Tensor:
        """z ∈ [0, 1], θ₀'s shape: hard-concrete samples, or the deterministic gate."""
        logits = self.alpha
        if sample:
            u = torch.rand_like(self.alpha).clamp(1e-6, 1 - 1e-6)
            logits = torch.log(u) - torch.log1p(-u) + self.alpha
        return (torch.sigmoid(logits) * (self.right - self.left) + self.left).clamp(0.0, 1.0)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original + self.gate(sample=self.training) * self.w

    def expected_l0(self) -> torch.Tensor:
        """Σ P(z ≠ 0) = Σ σ(α − log(−l/r)) over this tensor's gates (a scalar)."""
        return torch.sigmoid(self.alpha - math.log(-self.left / self.right)).sum()

    @torch.no_grad()
    def diff(self) -> torch.Tensor:
        """z ⊙ w with the deterministic gate: the difference evaluation adds to θ₀."""
        return self.gate(sample=False) * self.w


class SparseDiff(nn.Module):
    """Phase 2 parametrization: θ₀ ↦ θ₀ with ``values`` added at the flat positions ``index``
    (both of length k_t ≥ 1); every other entry is θ₀'s own, bit for bit. Unlike PaFi's
    ``SparseDelta`` the index is learned, so it is saved with the values."""

    def __init__(self, index: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.register_buffer("index", index)
        self.values = nn.Parameter(values)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original.flatten().index_add(0, self.index, self.values).view_as(original)


def _top_k_masks(diffs: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Boolean masks, one per tensor of ``diffs``, with k True in all: the k largest |diff|, ties
    broken towards the earlier position in the concatenation of the flattened tensors."""
    magnitude = torch.cat([d.abs().flatten() for d in diffs])
    kth = magnitude.topk(k).values[-1]
    keep = magnitude > kth
    ties = (magnitude == kth).nonzero().flatten()[: k - int(keep.sum())]
    keep[ties] = True
    return list(keep.split([d.numel() for d in diffs]))


class DiffPruned(nn.Module):
    """``model`` with diff pruning's parametrizations on the tensors named in ``shapes`` (their
    shapes, recorded before parametrizing); ``k`` the entries kept by :meth:`fix_mask`."""

    def __init__(self, model: nn.Module, shapes: dict[str, torch.Size], k: int, gate_lr: float = GATE_LR,
                 penalty: float = PENALTY):
        super().__init__()
        self.model, self.shapes, self.k = model, shapes, k
        self.gate_lr, self.penalty = gate_lr, penalty
        for name in shapes:
            owner, attr = self._locate(name)
            gate = GatedDiff(getattr(owner, attr).detach()).eval()  # registering runs it once: draw nothing
            parametrize.register_parametrization(owner, attr, gate)
            gate.train(owner.training)

    @property
    def config(self):
        return self.model.config

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def _locate(self, name: str) -> tuple[nn.Module, str]:
        path, _, attr = name.rpartition(".")
        return self.model.get_submodule(path), attr

    def _parametrization(self, name: str) -> nn.Module | None:
        owner, attr = self._locate(name)
        if not parametrize.is_parametrized(owner, attr):
            return None
        return owner.parametrizations[attr][0]

    def gates(self) -> list[GatedDiff]:
        """The phase-1 parametrizations (empty once the mask is fixed)."""
        return [m for m in self.model.modules() if isinstance(m, GatedDiff)]

    def regularization(self) -> torch.Tensor:
        """λ · expected L0 of all gates; 0 once the mask is fixed."""
        gates = self.gates()
        if not gates:
            return torch.zeros((), device=next(self.parameters()).device)
        return self.penalty * sum(g.expected_l0() for g in gates)

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Diffs (and a trained head) at ``lr``; the gates' α, while there are gates, at ``gate_lr``."""
        alphas = {id(g.alpha) for g in self.gates()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in alphas]
        groups = [{"params": rest, "lr": lr}]
        if alphas:
            groups.append({"params": [g.alpha for g in self.gates()], "lr": self.gate_lr})
        return groups

    @torch.no_grad()
    def fix_mask(self) -> None:
        """Phase 2: keep the k largest |z ⊙ w| (continuing from those values), drop the gates."""
        names = [n for n in self.shapes if isinstance(self._parametrization(n), GatedDiff)]
        if not names:
            raise RuntimeError("the mask is already fixed")
        diffs = [self._parametrization(n).diff() for n in names]
        for name, diff, keep in zip(names, diffs, _top_k_masks(diffs, self.k), strict=True):
            owner, attr = self._locate(name)
            parametrize.remove_parametrizations(owner, attr, leave_parametrized=False)  # back to θ₀
            index = keep.flatten().nonzero().flatten()
            if index.numel():
                parametrize.register_parametrization(owner, attr, SparseDiff(index, diff.flatten()[index].clone()))


class DiffPruning(Method):
    """Diff pruning; the knob k is the number of diff entries kept (see the module doc)."""

    name = "diff-pruning"
    knob = Knob("k", 1, None, 86_000,
                "diff entries kept after phase 1 (86,000: the paper's headline 0.5 %, of the 17.24 M numbers "
                "diff pruning gates in paraphrase-MiniLM-L3-v2)", start=128)
    default_lrs = (
        1e-4,  # the diffs are full-fine-tuning offsets, but gated and then sparse: 5× full tuning's 2e-5
        1e-3,  # few kept entries (small k) must each move further
    )
    starts_at_pretrained = True
    head_policies = ("frozen", "train")

    def unsupported(self, model: nn.Module) -> str | None:
        shared = len(list(model.named_parameters(remove_duplicate=False))) - len(list(model.named_parameters()))
        if shared:
            return (f"diff pruning gates each tensor once, and {type(model).__name__} shares {shared} parameter "
                    "tensor(s) between modules (tied weights)")
        return None

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        heads = set(head_names)
        return sum(p.numel() for n, p in model.named_parameters() if n not in heads)

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> DiffPruned:
        """Freeze ``model``, gate every non-head tensor (nothing random: ``seed`` is unused; the gates'
        noise comes from the generator the training loop seeds), and apply the head policy."""
        reason = self.unsupported(model)
        if reason:
            raise ConfigError("method", reason)
        heads = set(head_names)
        shapes = {n: p.shape for n, p in model.named_parameters() if n not in heads}
        eligible = sum(math.prod(s) for s in shapes.values())
        if knob > eligible:
            raise ConfigError("knob", f"of diff-pruning (k) must be at most the {eligible} numbers it can gate, "
                                      f"got {knob}")
        model.requires_grad_(False)
        apply_head_policy(model, head, head_names)
        return DiffPruned(model, shapes, knob)

    def counts(self, built: DiffPruned, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        eligible = sum(math.prod(s) for s in built.shapes.values())
        heads = head_size(built.model, head, head_names)
        return Counts(trainable=2 * eligible + heads, stored=knob + heads, head=heads)

    def fit(self, built: DiffPruned, train: Callable, /, **kwargs):
        """Phase 1, then (if it did not fail) the mask fixed and phase 2 with the same arguments.
        Returns phase 2's result, its ``steps`` and ``seconds`` summed over both phases (a failed
        phase 1 comes back as it is). ``train`` is positional-only, so that
        :func:`~intrinsic.training.train_and_evaluate`'s own ``train=`` (the split) passes through ``kwargs``."""
        first = train(built, **kwargs)
        if first.status != "ok":
            return first
        built.fix_mask()
        second = train(built, **kwargs)
        return dataclasses.replace(second, steps=first.steps + second.steps, seconds=first.seconds + second.seconds)
