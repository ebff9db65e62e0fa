"""Triton Fastfood kernels: P θ_d and Pᵀ g in one pass each, with no stored random state.

One program owns one Fastfood block of L = 2^LOG_L ≤ 2^15 entries. The forward program loads
θ_d (the same d values for every block, so they stay in L2), regenerates its block's signs,
Gaussians and permutation from the seed (``intrinsic.projections.fastfood_random`` is the
reference these must match bit for bit in the integers), and computes in registers

    B·x → H → Π → G/‖G‖ → H → × segment scale (→ + θ₀)

writing each output entry once. The transpose program does the adjoint steps in reverse order
on its slice of g and accumulates over the blocks it visits; the launcher sums the per-program
partials (deterministic; no atomics). Global memory traffic is therefore the output (or g) once,
θ₀ once when fused, and O(d · programs) for θ_d and the partials.

Random numbers are uint32 hashes (``mix32``), the permutation a bijection of k-bit integers,
and segments are found by binary search in the (m,) table of segment starts.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .hadamard import MAX_LOG_BLOCK, num_warps_for, wht

MAX_BLOCK_SIZE = 1 << MAX_LOG_BLOCK


@triton.jit
def mix32(x):
    """lowbias32 on uint32 (wrapping multiplication)."""
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    x = x ^ (x >> 16)
    return x


@triton.jit
def _block_key(seed_key, block):
    return mix32(seed_key ^ mix32(block + 0x632BE5AB))


@triton.jit
def _signs_and_gaussians(key, j):
    """(±1 as float32, unnormalised Gaussian float32) for entries j (uint32) of a block."""
    h1 = mix32(key ^ mix32(2 * j))
    h2 = mix32(key ^ mix32(2 * j + 1))
    sign = 1.0 - 2.0 * (h1 & 1).to(tl.float32)
    u1 = ((h1 >> 8) + 1).to(tl.float32) * 5.9604644775390625e-08  # 2^-24
    u2 = (h2 >> 8).to(tl.float32) * 5.9604644775390625e-08
    gauss = tl.sqrt(-2.0 * tl.log(u1)) * tl.cos(6.283185307179586 * u2)
    return sign, gauss


@triton.jit
def _permuted_index(key, j, LOG_L: tl.constexpr, INVERSE: tl.constexpr):
    """π(j) (or π⁻¹(j)) for uint32 j: three rounds of x ↦ rotl((a x + c) mod 2^k, ⌊k/2⌋)."""
    MASK: tl.constexpr = (1 << LOG_L) - 1
    ROT: tl.constexpr = LOG_L // 2
    p = mix32(key ^ 0x5BD1E995)
    x = j
    for i in tl.static_range(3):
        r: tl.constexpr = 2 - i if INVERSE else i
        a = mix32(p + 2 * r) | 1
        c = mix32(p + 2 * r + 1)
        if INVERSE:
            inv = a  # a⁻¹ mod 2^32 by Newton's iteration: 3 → 6 → 12 → 24 → 48 correct bits
            for _ in tl.static_range(4):
                inv = inv * (2 - a * inv)
            x = ((x >> ROT) | (x << (LOG_L - ROT))) & MASK
            x = (inv * ((x - c) & MASK)) & MASK
        else:
            x = (a * x + c) & MASK
            x = ((x << ROT) | (x >> (LOG_L - ROT))) & MASK
    return x


@triton.jit
def _segment_of(pos, seg_start_ptr, n_segments, STEPS: tl.constexpr):
    """Index i of the segment holding row ``pos``: the last i with start_i ≤ pos."""
    lo = tl.zeros_like(pos)
    hi = lo + (n_segments - 1)
    for _ in tl.static_range(STEPS):
        mid = (lo + hi + 1) // 2
        go = tl.load(seg_start_ptr + mid) <= pos
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid - 1)
    return lo


@triton.jit
def _block_diagonals(key, j, LOG_L: tl.constexpr):
    """(B, G/√(L·ΣG²)) of one block: G scaled so that H G Π H B has unit-norm columns."""
    L: tl.constexpr = 1 << LOG_L
    sign, gauss = _signs_and_gaussians(key, j)
    return sign, gauss / tl.sqrt(L * tl.sum(gauss * gauss, axis=0))


@triton.jit
def _block_transform(x, key, j, LOG_L: tl.constexpr):
    """H G Π H B x for one block (x in its compute dtype, G normalised to unit-norm columns)."""
    sign, gauss = _block_diagonals(key, j, LOG_L)
    x = wht(x * sign.to(x.dtype), LOG_L)
    x = tl.gather(x, _permuted_index(key, j, LOG_L, False).to(tl.int32), 0)
    return wht(x * gauss.to(x.dtype), LOG_L)


@triton.jit
def _fastfood_forward_kernel(theta_ptr, out_ptr, base_ptr, seg_start_ptr, seg_scale_ptr,
                             d, row_begin, row_end, group_offset, first_block, seed_key, n_segments,
                             LOG_L: tl.constexpr, SEARCH_STEPS: tl.constexpr, HAS_BASE: tl.constexpr):
    # Rows are global (flat θ) indices. The group's blocks start at row group_offset; this launch
    # writes rows [row_begin, row_end) to out[r − row_begin], one program per overlapped block.
    L: tl.constexpr = 1 << LOG_L
    block = (row_begin - group_offset) // L + tl.program_id(0)
    j = tl.arange(0, L)
    key = _block_key(seed_key.to(tl.uint32), (first_block + block).to(tl.uint32))
    x = tl.load(theta_ptr + j, mask=j < d, other=0.0)
    z = _block_transform(x, key, j.to(tl.uint32), LOG_L)
    row = group_offset + block.to(tl.int64) * L + j
    valid = (row >= row_begin) & (row < row_end)
    seg = _segment_of(row, seg_start_ptr, n_segments, SEARCH_STEPS)
    y = z * tl.load(seg_scale_ptr + seg, mask=valid, other=0.0).to(z.dtype)
    if HAS_BASE:
        y = y + tl.load(base_ptr + (row - row_begin), mask=valid, other=0.0).to(z.dtype)
    tl.store(out_ptr + (row - row_begin), y.to(out_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _fastfood_transpose_kernel(grad_ptr, partial_ptr, dot_ptr, theta_ptr, seg_start_ptr, seg_scale_ptr,
                               d, row_begin, row_end, group_offset, first_block, n_programs, blocks_per_program,
                               seed_key, n_segments,
                               LOG_L: tl.constexpr, SEARCH_STEPS: tl.constexpr, WANT_DOT: tl.constexpr):
    # Pᵀ(scale ⊙ g) over rows [row_begin, row_end) (g[r − row_begin]); with WANT_DOT also
    # Σ_r g_r · z_r, z the unscaled forward output, recomputed here: the gradient of a SAID λ.
    L: tl.constexpr = 1 << LOG_L
    pid = tl.program_id(0)
    j = tl.arange(0, L)
    ju = j.to(tl.uint32)
    acc = tl.zeros((L,), dtype=partial_ptr.dtype.element_ty)
    dot = tl.zeros((L,), dtype=partial_ptr.dtype.element_ty)
    if WANT_DOT:
        theta = tl.load(theta_ptr + j, mask=j < d, other=0.0).to(acc.dtype)
    first = (row_begin - group_offset) // L
    # A while loop rather than range(): Triton's CPU interpreter cannot index a range with a
    # runtime scalar under NumPy ≥ 2.4; compiled, both are the same scf loop.
    step = 0
    while step < blocks_per_program:
        block = first + pid + step * n_programs  # past the last block, every row is masked: adds zeros
        key = _block_key(seed_key.to(tl.uint32), (first_block + block).to(tl.uint32))
        row = group_offset + block.to(tl.int64) * L + j
        valid = (row >= row_begin) & (row < row_end)
        seg = _segment_of(row, seg_start_ptr, n_segments, SEARCH_STEPS)
        g = tl.load(grad_ptr + (row - row_begin), mask=valid, other=0.0).to(acc.dtype)
        if WANT_DOT:
            dot += g * _block_transform(theta, key, ju, LOG_L)
        w = g * tl.load(seg_scale_ptr + seg, mask=valid, other=0.0).to(acc.dtype)
        # The adjoint of H G Π H B, steps reversed: B H Πᵀ G H (H, G, B are symmetric).
        sign, gauss = _block_diagonals(key, ju, LOG_L)
        w = wht(w, LOG_L) * gauss.to(acc.dtype)
        w = tl.gather(w, _permuted_index(key, ju, LOG_L, True).to(tl.int32), 0)
        acc += wht(w, LOG_L) * sign.to(acc.dtype)
        step += 1
    tl.store(partial_ptr + pid.to(tl.int64) * L + j, acc)
    if WANT_DOT:
        tl.store(dot_ptr + pid, tl.sum(dot, axis=0))


def _search_steps(n_segments: int) -> int:
    return max(1, math.ceil(math.log2(max(n_segments, 1))) + 1)


def _num_programs(device: torch.device, n_blocks: int) -> int:
    if device.type == "cuda":
        return min(n_blocks, 4 * torch.cuda.get_device_properties(device).multi_processor_count)
    return min(n_blocks, 4)  # the CPU interpreter: a few programs exercise the persistent loop


def _block_range(block_size: int, group_offset: int, row_begin: int, row_end: int) -> tuple[int, int]:
    """(log₂ L, number of blocks overlapping rows [row_begin, row_end))."""
    log_l = block_size.bit_length() - 1
    if block_size != 1 << log_l or block_size > MAX_BLOCK_SIZE:
        raise ValueError(f"the Fastfood kernel takes blocks of 2^k ≤ {MAX_BLOCK_SIZE} entries, got {block_size}")
    if not group_offset <= row_begin < row_end:
        raise ValueError(f"empty or misplaced row range [{row_begin}, {row_end}) for a group at {group_offset}")
    first = (row_begin - group_offset) // block_size
    last = (row_end - 1 - group_offset) // block_size
    return log_l, last - first + 1


def fastfood_forward(theta_d: torch.Tensor, out: torch.Tensor, *, seed_key: int, block_size: int, first_block: int,
                     group_offset: int, row_begin: int, row_end: int, segment_starts: torch.Tensor,
                     segment_scales: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
    """Rows [row_begin, row_end) of P θ_d (+ ``base``), written into ``out``.

    Args:
        theta_d: (d,) contiguous, d ≤ block_size; float32 or float64 (the compute dtype).
        out: contiguous, ``row_end − row_begin`` entries (any shape, any float dtype); ``base``
            (optional, θ₀) likewise, added in the same pass.
        seed_key: ``fastfood_random.seed_key(seed)``. The group of blocks of size ``block_size``
            starts at flat row ``group_offset``; its first block is numbered ``first_block``.
        segment_starts: (m,) int64 first flat row of each segment, ascending, with
            ``segment_starts[0] ≤ row_begin``; segment_scales: (m,) the factor of each segment's rows.
    """
    log_l, n_blocks = _block_range(block_size, group_offset, row_begin, row_end)
    if out.numel() != row_end - row_begin or not out.is_contiguous():
        raise ValueError(f"out must be contiguous with {row_end - row_begin} entries, got {tuple(out.shape)}")
    _fastfood_forward_kernel[(n_blocks,)](
        theta_d, out, base if base is not None else out, segment_starts, segment_scales,
        theta_d.numel(), row_begin, row_end, group_offset, first_block, seed_key, segment_starts.numel(),
        LOG_L=log_l, SEARCH_STEPS=_search_steps(segment_starts.numel()), HAS_BASE=base is not None,
        num_warps=num_warps_for(block_size),
    )
    return out


def fastfood_transpose(grad: torch.Tensor, *, d: int, seed_key: int, block_size: int, first_block: int,
                       group_offset: int, row_begin: int, row_end: int, segment_starts: torch.Tensor,
                       segment_scales: torch.Tensor, theta_d: torch.Tensor | None = None):
    """Pᵀ(scale ⊙ g) over rows [row_begin, row_end) of ``grad`` (contiguous, that many entries).

    Returns (d,) in g's dtype; with ``theta_d`` also Σ_r g_r (Pθ_d)_r / scale_r, the unscaled
    dot product that is the gradient of a per-segment scale, as a 0-d tensor: ``(pt_g, dot)``.
    """
    log_l, n_blocks = _block_range(block_size, group_offset, row_begin, row_end)
    programs = _num_programs(grad.device, n_blocks)
    partial = grad.new_empty(programs, block_size)
    dots = grad.new_zeros(programs)
    want_dot = theta_d is not None
    _fastfood_transpose_kernel[(programs,)](
        grad, partial, dots, theta_d if want_dot else grad, segment_starts, segment_scales,
        d, row_begin, row_end, group_offset, first_block, programs, -(-n_blocks // programs),
        seed_key, segment_starts.numel(),
        LOG_L=log_l, SEARCH_STEPS=_search_steps(segment_starts.numel()), WANT_DOT=want_dot,
        num_warps=num_warps_for(block_size),
    )
    result = partial.sum(0)[:d]
    return (result, dots.sum()) if want_dot else result
