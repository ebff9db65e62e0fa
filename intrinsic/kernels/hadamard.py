"""Triton Walsh–Hadamard transform: a register-resident in-block helper and a row kernel.

``wht(x, LOG_L)`` transforms a length-L = 2^LOG_L vector held by one program. It uses the
constant-geometry (Pease) form of the fast transform: one stage maps y_k = x_{2k} + x_{2k+1}
and y_{k+L/2} = x_{2k} − x_{2k+1}; applying that stage log₂L times gives x ↦ H_L x in
Sylvester (natural) order, because H_2 ⊗ … ⊗ H_2 is unchanged by the perfect shuffle. Every
stage has the same reshape/split/join pattern, so the whole transform is one unrolled loop.

``hadamard_rows(x)`` is the launcher behind ``hadamard_transform(x, backend="triton")``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import on_device

# Largest row one program holds, per dtype: beyond it registers spill (float32 2^14 on sm_80) or
# shared memory overflows (float64 2^15); longer rows are split as H_a ⊗ H_b. See scripts/kernel_resources.py.
MAX_LOG_BLOCK = {torch.float32: 13, torch.float64: 13}


@triton.jit
def wht(x, LOG_L: tl.constexpr):
    """H_L x for a register tensor x of shape (2^LOG_L,) (unnormalised, natural order)."""
    L: tl.constexpr = 1 << LOG_L
    for _ in tl.static_range(LOG_L):
        even, odd = tl.split(tl.reshape(x, (L // 2, 2)))
        x = tl.reshape(tl.permute(tl.join(even + odd, even - odd), (1, 0)), (L,))
    return x


@triton.jit(do_not_specialize=["inner", "outer_stride", "inner_stride", "elem_stride"])
def _hadamard_rows_kernel(x_ptr, y_ptr, inner, outer_stride, inner_stride, elem_stride, LOG_L: tl.constexpr):
    # Program r transforms the L values at base + j·elem_stride, base = (r // inner)·outer_stride
    # + (r % inner)·inner_stride: contiguous rows (elem_stride 1) or strided columns.
    row = tl.program_id(0).to(tl.int64)
    base = (row // inner) * outer_stride + (row % inner) * inner_stride
    offsets = base + tl.arange(0, 1 << LOG_L).to(tl.int64) * elem_stride
    x = tl.load(x_ptr + offsets)
    tl.store(y_ptr + offsets, wht(x, LOG_L))


def num_warps_for(L: int, dtype: torch.dtype = torch.float32) -> int:
    """Warps per program: about 256 four-byte values a warp (128 of eight bytes), between 1 and 16."""
    per_warp = 256 if dtype.itemsize <= 4 else 128
    return max(1, min(16, L // per_warp))


def launch_options(L: int, dtype: torch.dtype = torch.float32) -> dict:
    """``num_warps`` and ``maxnreg`` for a program of L values: every register of the SM's 64 K
    may go to the program's threads (left alone, ptxas caps some variants at 32 or 64 registers
    and spills)."""
    warps = num_warps_for(L, dtype)
    return {"num_warps": warps, "maxnreg": min(255, 65536 // (32 * warps))}


def max_log_block(dtype: torch.dtype) -> int:
    """log₂ of the longest row one program transforms in ``dtype`` (float32 or float64)."""
    if dtype not in MAX_LOG_BLOCK:
        raise ValueError(f"the Triton Hadamard kernel computes in float32 or float64, not {dtype}")
    return MAX_LOG_BLOCK[dtype]


def hadamard_rows(x: torch.Tensor, max_log: int | None = None) -> torch.Tensor:
    """x @ H_n for a contiguous (batch, n) float32/float64 tensor, n a power of two.

    Rows longer than 2^max_log (default :func:`max_log_block` of x's dtype) are split as
    H_n = H_a ⊗ H_b; tests lower the limit to reach that path cheaply."""
    batch, n = x.shape
    max_log = max_log_block(x.dtype) if max_log is None else max_log
    y = torch.empty_like(x)
    log_n = n.bit_length() - 1
    with on_device(x.device):
        if log_n <= max_log:
            _hadamard_rows_kernel[(batch,)](x, y, 1, n, 0, 1, LOG_L=log_n, **launch_options(n, x.dtype))
            return y
        # Transform the a contiguous rows of length b, then the b columns of length a (stride b), in place.
        log_b = max_log
        log_a = log_n - log_b
        if log_a > max_log:
            raise ValueError(f"the Triton Hadamard kernel handles n ≤ 2^{2 * max_log}, got n = 2^{log_n}")
        a, b = 1 << log_a, 1 << log_b
        _hadamard_rows_kernel[(batch * a,)](x, y, a, n, b, 1, LOG_L=log_b, **launch_options(b, x.dtype))
        _hadamard_rows_kernel[(batch * b,)](y, y, b, n, 1, b, LOG_L=log_a, **launch_options(a, x.dtype))
    return y
