"""The unnormalised Walsh–Hadamard transform along the last dimension.

``hadamard_transform(x)`` returns ``x @ H_n`` where ``H_n`` is the n×n Sylvester–Hadamard
matrix (entries ±1, ``H_n @ H_n = n·I``, symmetric), n = ``x.shape[-1]`` a power of two.

Backends, tried in this order unless one is forced:

* ``"triton"``: our kernel (``intrinsic/kernels/hadamard.py``), for CUDA tensors
  when triton imports; one program per row of ≤ 2^15 entries, longer rows as H_a ⊗ H_b. On CPU
  it is usable only when forced, under Triton's interpreter (``TRITON_INTERPRET=1``);
* ``"fast_hadamard_transform"``: Tri Dao's CUDA kernel, used for CUDA tensors when the
  optional package imports (``pip install intrinsic[cuda]``);
* ``"torch"``: pure PyTorch, any device. ``H_n`` is factored as a Kronecker product of
  Sylvester matrices of size ≤ 64, ``H_n = H_{a1} ⊗ … ⊗ H_{at}``, and each factor is applied
  as one batched matrix product over its axis: ⌈log₂n / 6⌉ passes over memory instead of
  log₂n butterfly passes.

Force a backend with ``backend=`` or the environment variable ``INTRINSIC_HADAMARD_BACKEND``.
Every backend's result is differentiable through the same ``autograd.Function``: since H is
symmetric, the backward of ``y = x H`` is ``grad_x = grad_y H``.
"""

from __future__ import annotations

import functools
import math
import os

import torch

from .notices import warn_once

__all__ = ["hadamard_transform", "available_backends", "sylvester_matrix"]

BACKEND_ENV_VAR = "INTRINSIC_HADAMARD_BACKEND"
_MAX_FACTOR_LOG2 = 6  # factors of size ≤ 64: measured fastest on CPU (scripts/bench_projection.py)
_FHT_MAX_DIM = 32768  # largest last dimension fast-hadamard-transform accepts per call


def sylvester_matrix(n: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The n×n Sylvester–Hadamard matrix, entry (i, j) = (-1)^popcount(i & j)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"sylvester_matrix needs a power of two, got n={n}")
    h = torch.ones(1, 1, dtype=dtype, device=device)
    h2 = torch.tensor([[1, 1], [1, -1]], dtype=dtype, device=device)
    while h.shape[0] < n:
        h = torch.kron(h, h2)
    return h


@functools.lru_cache(maxsize=64)
def _cached_sylvester(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return sylvester_matrix(n, dtype, device)


def _kronecker_factors(log2_n: int) -> list[int]:
    """Split 2^log2_n into balanced power-of-two factors, each ≤ 2^_MAX_FACTOR_LOG2."""
    count = max(1, math.ceil(log2_n / _MAX_FACTOR_LOG2))
    base, extra = divmod(log2_n, count)
    return [2 ** (base + 1)] * extra + [2**base] * (count - extra)


def _hadamard_torch(x: torch.Tensor) -> torch.Tensor:
    """Pure-PyTorch transform of a (batch, n) tensor (see module docstring)."""
    batch, n = x.shape
    if n == 1:
        return x.clone()
    y = x
    left, right = batch, n
    # Row-major index i = (i1, …, it): factor a_j acts on axis j, viewed as (left, a_j, right).
    for a in _kronecker_factors(n.bit_length() - 1):
        right //= a
        h = _cached_sylvester(a, x.dtype, x.device)
        if right == 1:
            y = y.reshape(-1, a) @ h
        else:
            y = torch.matmul(h, y.reshape(left, a, right))
        left *= a
    return y.reshape(batch, n)


def _fht_module():
    try:
        import fast_hadamard_transform  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a binary built against another torch/CUDA
        return None
    return fast_hadamard_transform


def _hadamard_fht(x: torch.Tensor) -> torch.Tensor:
    """fast-hadamard-transform on a (batch, n) CUDA tensor; n > 32768 is split as H_a ⊗ H_b."""
    fht = _fht_module().hadamard_transform
    batch, n = x.shape
    if n <= _FHT_MAX_DIM:
        return fht(x, scale=1.0)
    b = _FHT_MAX_DIM
    a = n // b
    y = fht(x.reshape(batch * a, b), scale=1.0).reshape(batch, a, b)
    y = fht(y.transpose(1, 2).reshape(batch * b, a), scale=1.0)
    return y.reshape(batch, b, a).transpose(1, 2).reshape(batch, n)


def _hadamard_triton(x: torch.Tensor) -> torch.Tensor:
    from .kernels.hadamard import hadamard_rows

    return hadamard_rows(x)


_BACKENDS = {"triton": _hadamard_triton, "fast_hadamard_transform": _hadamard_fht, "torch": _hadamard_torch}
_FLOAT64_BACKENDS = ("triton", "torch")  # fast-hadamard-transform has no float64 path


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends usable for tensors on ``device``, in dispatch order (``"auto"`` takes the first)."""
    from .kernels import unavailable_reason

    device = torch.device(device)
    names = []
    if device.type == "cuda" and unavailable_reason(device) is None:
        names.append("triton")
    if device.type == "cuda" and _fht_module() is not None:
        names.append("fast_hadamard_transform")
    names.append("torch")
    if device.type == "cpu" and unavailable_reason(device) is None:
        names.append("triton")  # the interpreter: correct but slow, so only when forced
    return names


def _resolve_backend(x: torch.Tensor, backend: str | None) -> str:
    requested = backend or os.environ.get(BACKEND_ENV_VAR) or "auto"
    usable = available_backends(x.device)
    if requested == "auto":
        return next(name for name in usable if x.dtype != torch.float64 or name in _FLOAT64_BACKENDS)
    if requested not in _BACKENDS:
        raise ValueError(
            f"unknown Hadamard backend {requested!r}; choose one of {sorted(_BACKENDS)} or 'auto'"
        )
    if requested not in usable or (x.dtype == torch.float64 and requested not in _FLOAT64_BACKENDS):
        warn_once(
            f"Hadamard backend {requested!r} is not usable for {x.dtype} tensors on {x.device.type}; "
            f"falling back to 'torch'. Usable here: {usable}."
        )
        return "torch"
    return requested


class _HadamardTransform(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, backend: str) -> torch.Tensor:
        ctx.backend = backend
        return _transform_2d(x, backend)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _transform_2d(grad.contiguous(), ctx.backend), None


def _transform_2d(x: torch.Tensor, backend: str) -> torch.Tensor:
    n = x.shape[-1]
    flat = x.reshape(-1, n)
    if flat.dtype in (torch.float16, torch.bfloat16) and backend in ("torch", "triton"):
        return _BACKENDS[backend](flat.float()).to(x.dtype).reshape(x.shape)
    return _BACKENDS[backend](flat).reshape(x.shape)


def hadamard_transform(x: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """Unnormalised Walsh–Hadamard transform of ``x`` along its last dimension.

    Args:
        x: tensor of shape (..., n), n a power of two (any n up to 2^31 that fits in memory),
            float32 or float64 (float16/bfloat16 are computed in float32).
        backend: ``"auto"`` (default), ``"triton"``, ``"fast_hadamard_transform"`` or ``"torch"``; overrides
            ``$INTRINSIC_HADAMARD_BACKEND``.

    Returns:
        Tensor of the same shape and dtype: ``x @ H_n``. Applying it twice gives ``n · x``.
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"hadamard_transform needs a floating-point tensor, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("hadamard_transform needs at least one dimension")
    n = x.shape[-1]
    if n < 1 or n & (n - 1):
        raise ValueError(
            f"hadamard_transform needs the last dimension to be a power of two, got {n}; "
            "zero-pad it to the next power of two first"
        )
    if x.numel() == 0:
        return x.clone()
    return _HadamardTransform.apply(x.contiguous(), _resolve_backend(x, backend))
