"""What every random projection P ∈ R^{D×d} shares: validation, normalisation, autograd.

The flat parameter vector θ ∈ R^D is the concatenation of the model's tensors, the
*segments*, of sizes n_1 … n_m (Σ n_i = D). A projection maps θ_d ∈ R^d to the flat update
P θ_d ∈ R^D, and a gradient g ∈ R^D back to Pᵀ g ∈ R^d.

Normalisation (the same contract for every projection and layout, so that projections can be
compared at equal scale): every entry of P has expected square 1/N, where N is

* ``"global"`` (default; Li et al. 2018): D, so each whole column has expected squared norm 1
  and every parameter moves on the same per-element scale, as in full fine-tuning;
* ``"per_tensor"`` (the reference Intrinsic-SAID code): the size n_i of the entry's segment,
  so each tensor's slice of each column has expected squared norm 1: a 384-entry LayerNorm
  weight gets the same update norm as an 11.7 M-entry embedding.

Why global is the default: on paraphrase-MiniLM-L3-v2 / MRPC (d = 1000, AdamW, 16 steps) the
global scale trains at the literature's learning rate 3e-2 (loss 0.694 → 0.625), while
per-tensor diverges there (0.694 → 2.84) and needs ≈ 3e-3; the per-tensor scale lets the
smallest tensors dominate the update.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMALIZATIONS = ("per_tensor", "global")


class Projection(nn.Module):
    """Base class: a fixed linear map θ_d ∈ R^d ↦ P θ_d ∈ R^D, differentiable in θ_d.

    Subclasses implement :meth:`matvec` (θ_d ↦ Pθ_d) and :meth:`rmatvec` (g ↦ Pᵀg) without
    autograd; :meth:`forward` wires them into one ``autograd.Function`` so that the backward
    pass never stores anything of size D×d. Random state lives in non-persistent buffers
    (regenerated from ``seed``), so ``.to(device)`` moves it and ``state_dict()`` omits it.
    """

    name: str = "projection"

    def __init__(
        self, d: int, segment_sizes: Sequence[int], seed: int = 0, normalization: str = "global"
    ):
        super().__init__()
        sizes = tuple(int(n) for n in segment_sizes)
        if not sizes or any(n <= 0 for n in sizes):
            raise ValueError(f"segment sizes must be positive integers, got {sizes[:8]}…")
        D = sum(sizes)
        if not isinstance(d, int) or isinstance(d, bool) or d <= 0:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        if d > D:
            raise ValueError(
                f"d={d} exceeds the number of parameters D={D}; choose d ≤ D "
                "(a subspace larger than the parameter space is not a subspace)"
            )
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.d, self.D, self.seed = d, D, seed
        self.segment_sizes = sizes
        self.normalization = normalization

    def normalizer(self, segment: int) -> int:
        """N for entries of ``segment``: every entry of P has expected square 1/N."""
        return self.segment_sizes[segment] if self.normalization == "per_tensor" else self.D

    def forward(self, theta_d: torch.Tensor) -> torch.Tensor:
        """P θ_d: shape (d,) → (D,), differentiable in ``theta_d``."""
        if theta_d.shape != (self.d,):
            raise ValueError(f"expected θ_d of shape ({self.d},), got {tuple(theta_d.shape)}")
        return ProjectFunction.apply(theta_d, self)

    def add_to(self, theta_d: torch.Tensor, bases, scales: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[θ₀_i + λ_i (P θ_d)_i] for the segments' tensors ``bases`` (θ₀_i, any shapes with n_i
        entries), differentiable in θ_d and in ``scales`` (λ, shape (m,); None means all 1).
        Each result has its base's shape and dtype."""
        update = self(theta_d)
        tensors = []
        for i, (base, delta) in enumerate(zip(bases, update.split(self.segment_sizes), strict=True)):
            delta = delta.view(base.shape)
            if scales is not None:
                delta = delta * scales[i]
            tensors.append(base + delta.to(base.dtype))
        return tensors

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        """P θ_d for θ_d of shape (d,); returns shape (D,) in θ_d's dtype. No autograd."""
        raise NotImplementedError

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        """Pᵀ g for g of shape (D,); returns shape (d,) in g's dtype. No autograd."""
        raise NotImplementedError

    def config(self) -> dict:
        """Everything that identifies this projection; recorded with every result."""
        return {
            "projection": self.name,
            "d": self.d,
            "D": self.D,
            "seed": self.seed,
            "normalization": self.normalization,
        }

    def state_nbytes(self) -> int:
        """Bytes of random state held in memory (buffers)."""
        return sum(b.numel() * b.element_size() for b in self.buffers())

    def to_dense(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The explicit D×d matrix (for tests and small D only: it costs D·d memory)."""
        if self.D * self.d > 50_000_000:
            raise MemoryError(f"to_dense would build a {self.D}×{self.d} matrix; use it on small D only")
        device = next(iter(self.buffers()), torch.empty(0)).device
        eye = torch.eye(self.d, dtype=dtype, device=device)
        return torch.stack([self.matvec(column) for column in eye], dim=1)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items() if k != "projection")


class ProjectFunction(torch.autograd.Function):
    """y = P θ_d with backward grad_θ = Pᵀ grad_y; stores nothing but a handle to P."""

    @staticmethod
    def forward(ctx, theta_d: torch.Tensor, projection: Projection) -> torch.Tensor:
        ctx.projection = projection
        return projection.matvec(theta_d)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        return ctx.projection.rmatvec(grad.contiguous()), None


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())
