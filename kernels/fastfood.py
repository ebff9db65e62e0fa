"""Triton Fastfood kernels: P θ_d and Pᵀ g in one pass each, with no stored random state.

Block b of a stacked Fastfood projection is V_b = H G_b Π_b H B, with B shared by all blocks
(``intrinsic.projections.fastfood_random``), so the launcher computes u = H B θ_d once (L values)
and the kernels do the per-block part. One program owns one block of L = 2^LOG_L entries
(L ≤ :func:`max_block_size` of the compute dtype). The forward program loads u (the same L
values for every block, so they stay in L2), regenerates its block's Gaussians and permutation
from the seed (matching the reference bit for bit in the integers), and computes in registers

    u → Π → G/‖G‖ → H → × segment scale (→ + θ₀)

writing each output entry once. The transpose program does the adjoint, Π_bᵀ G_b H (scale ⊙ g_b),
on its blocks and accumulates over them; the launcher sums the per-program partials
(deterministic; no atomics) and applies B H once.

**One launch covers many tensors.** Rows are flat indices into the concatenation of m segments
(tensors). Each segment i has a first row ``starts[i]`` and a scale; the base θ₀ is read through
an *origin* table: θ₀ of row r lives at ``base_ptr + origins[i] + r``, so the m tensors of θ₀
stay where the model keeps them. The output (or g) is one contiguous buffer over the launch's
rows. A program finds its block's first segment by a scalar binary search and the later ones by
walking the boundaries inside the block (almost always none), so the per-entry cost does not
grow with m.

**The λ gradient** (SAID) needs Σ_{r ∈ segment i} g_r z_r. A (block b, segment i) pair that
overlaps writes its partial sum to slot b + i: along the rows, b and i never decrease and one of
them grows at each new pair, so the slots of different pairs differ, and those of segment i are
the consecutive slots first_block(i) + i … last_block(i) + i. The launcher sums them in float64.

Integer arguments that change between launches are not specialised (``do_not_specialize``), so
one compiled variant serves every tensor layout of a block size and dtype.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

from intrinsic.projections import fastfood_random as _random

from . import interpreting, on_device
from .hadamard import launch_options, wht

MIX_MULTIPLIER_1 = tl.constexpr(_random.MIX_MULTIPLIER_1)
MIX_MULTIPLIER_2 = tl.constexpr(_random.MIX_MULTIPLIER_2)
MIX_SHIFT_1 = tl.constexpr(_random.MIX_SHIFT_1)
MIX_SHIFT_2 = tl.constexpr(_random.MIX_SHIFT_2)
MIX_SHIFT_3 = tl.constexpr(_random.MIX_SHIFT_3)
BLOCK_SALT = tl.constexpr(_random.BLOCK_SALT)
ENTRY_MULTIPLIER = tl.constexpr(_random.ENTRY_MULTIPLIER)
PERMUTATION_SALT = tl.constexpr(_random.PERMUTATION_SALT)
ROUNDS = tl.constexpr(_random.ROUNDS)

# Largest block per compute dtype: one program holds L values of the dtype in registers. The
# transpose with λ dots spills registers from float32 2^13 (float64 2^12) on; float64 2^15 would
# need 256 KiB of shared memory. ``scripts/kernel_resources.py`` prints the table behind the caps.
MAX_LOG_BLOCK = {torch.float32: 12, torch.float64: 11}
SEGMENT_SENTINEL = 1 << 62  # the start of a segment after the last: beyond every row
FORWARD_ARGS_NOT_SPECIALISED = ["row_begin", "row_end", "group_offset", "first_block", "seed_key", "n_segments"]
TRANSPOSE_ARGS_NOT_SPECIALISED = [*FORWARD_ARGS_NOT_SPECIALISED, "n_blocks", "n_programs"]


def max_block_size(dtype: torch.dtype) -> int:
    """Largest Fastfood block the kernels take for compute dtype ``dtype`` (0 if none)."""
    return 1 << MAX_LOG_BLOCK[dtype] if dtype in MAX_LOG_BLOCK else 0


# Hardware approximations (one MUFU instruction each, ≤ 2 ulp on [0, 1] and [0, 2π)); the
# interpreter has no libdevice, so there the exact functions stand in.
@triton.jit
def _log2_hardware(x):
    return libdevice.fast_log2f(x)


@triton.jit
def _cos_hardware(x):
    return libdevice.fast_cosf(x)


@triton.jit
def _log2_exact(x):
    return tl.log2(x)


@triton.jit
def _cos_exact(x):
    return tl.cos(x)


_log2 = _log2_exact if interpreting() else _log2_hardware
_cos = _cos_exact if interpreting() else _cos_hardware


@triton.jit
def mix32(x):
    """lowbias32 on uint32 (wrapping multiplication)."""
    x = x ^ (x >> MIX_SHIFT_1)
    x = x * MIX_MULTIPLIER_1
    x = x ^ (x >> MIX_SHIFT_2)
    x = x * MIX_MULTIPLIER_2
    return x ^ (x >> MIX_SHIFT_3)


@triton.jit
def _block_key(seed_key, block):
    """K_b (uint32) of block ``block`` (uint32)."""
    return mix32(seed_key ^ mix32(block + BLOCK_SALT))


@triton.jit
def _gaussians(key, j):
    """Unnormalised Gaussians (float32) for entries j (uint32) of a block: one hash each."""
    h = mix32(key ^ (j * ENTRY_MULTIPLIER))
    # Floats in [1, 2) with the hash bits as mantissa: 1 + k/2^16, exact, without a conversion.
    high = (((h >> 9) & 0x7FFF80) | 0x3F800000).to(tl.float32, bitcast=True)  # k = bits 16–31
    low = (((h << 7) & 0x7FFF80) | 0x3F800000).to(tl.float32, bitcast=True)  # k = bits 0–15
    u1 = 2.0 - high  # (2^16 − k)/2^16 ∈ (0, 1]
    u2 = low - 1.0  # k/2^16 ∈ [0, 1)
    return tl.sqrt(-1.3862943611198906 * _log2(u1)) * _cos(6.283185307179586 * u2)  # −2 ln 2, 2π


@triton.jit
def _permuted_index(key, j, LOG_L: tl.constexpr, INVERSE: tl.constexpr):
    """π(j) (or π⁻¹(j)) for uint32 j: two rounds of x ↦ x' ⊕ (x' ≫ ⌈k/2⌉), x' = (a x + c) mod 2^k."""
    MASK: tl.constexpr = (1 << LOG_L) - 1
    SHIFT: tl.constexpr = (LOG_L + 1) // 2
    p = mix32(key ^ PERMUTATION_SALT)
    x = j
    for i in tl.static_range(ROUNDS):
        if INVERSE:
            a = mix32(p + 2 * (ROUNDS - 1 - i)) | 1
            c = mix32(p + 2 * (ROUNDS - 1 - i) + 1)
            inv = a  # a⁻¹ mod 2^32 by Newton's iteration: 3 → 6 → 12 → 24 → 48 correct bits
            for _ in tl.static_range(4):
                inv = inv * (2 - a * inv)
            x = x ^ (x >> SHIFT)
            x = (inv * (x - c)) & MASK
        else:
            a = mix32(p + 2 * i) | 1
            c = mix32(p + 2 * i + 1)
            x = (a * x + c) & MASK
            x = x ^ (x >> SHIFT)
    return x


@triton.jit
def _normalised_gaussians(key, j, LOG_L: tl.constexpr):
    """G/√(L·ΣG²) of one block: the scale that gives H G Π H B unit-norm columns."""
    L: tl.constexpr = 1 << LOG_L
    gauss = _gaussians(key, j)
    return gauss * (1.0 / tl.sqrt(L * tl.sum(gauss * gauss, axis=0)))


@triton.jit
def _block_transform(u, gauss, key, j, LOG_L: tl.constexpr):
    """H G Π u for one block (u = H B θ_d in its compute dtype; G already normalised)."""
    x = tl.gather(u, _permuted_index(key, j, LOG_L, False).to(tl.int32), 0)
    return wht(x * gauss.to(x.dtype), LOG_L)


@triton.jit
def _first_segment(row, starts_ptr, n_segments, SEARCH_STEPS: tl.constexpr):
    """The last segment i with starts[i] ≤ row (a scalar binary search)."""
    lo = 0
    hi = n_segments - 1
    for _ in tl.static_range(SEARCH_STEPS):
        mid = (lo + hi + 1) // 2
        go = tl.load(starts_ptr + mid) <= row
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid - 1)
    return lo


@triton.jit(do_not_specialize=FORWARD_ARGS_NOT_SPECIALISED)
def _forward_kernel(u_ptr, out_ptr, base_ptr, starts_ptr, scales_ptr, origins_ptr,
                    row_begin, row_end, group_offset, first_block, seed_key, n_segments,
                    LOG_L: tl.constexpr, SEARCH_STEPS: tl.constexpr, HAS_BASE: tl.constexpr):
    # Rows are flat indices; the group's blocks start at row group_offset. This launch writes rows
    # [row_begin, row_end) to out[r − row_begin]; θ₀ of row r in segment i is base[origins[i] + r].
    # starts has n_segments + 1 entries, the last a sentinel beyond every row.
    L: tl.constexpr = 1 << LOG_L
    block = (row_begin - group_offset) // L + tl.program_id(0)
    j = tl.arange(0, L)
    ju = j.to(tl.uint32)
    key = _block_key(seed_key.to(tl.uint32), (first_block + block).to(tl.uint32))
    z = _block_transform(tl.load(u_ptr + j), _normalised_gaussians(key, ju, LOG_L), key, ju, LOG_L)

    # Per entry, only int32 offsets j within the block: the 64-bit row arithmetic is per block.
    block_row = group_offset + block.to(tl.int64) * L
    lo = (tl.maximum(block_row, row_begin) - block_row).to(tl.int32)  # valid entries: lo ≤ j < hi
    hi = (tl.minimum(block_row + L, row_end) - block_row).to(tl.int32)
    valid = (j >= lo) & (j < hi)
    seg = _first_segment(block_row + lo, starts_ptr, n_segments, SEARCH_STEPS)
    y = z * tl.load(scales_ptr + seg).to(z.dtype)
    if HAS_BASE:
        y += tl.load(base_ptr + (tl.load(origins_ptr + seg) + block_row) + j, mask=valid, other=0.0).to(z.dtype)
    seg += 1
    boundary = tl.load(starts_ptr + seg)
    while boundary < block_row + hi:  # the segments that start inside this block (rare): redo their entries
        later = valid & (j >= (boundary - block_row).to(tl.int32))
        redo = z * tl.load(scales_ptr + seg).to(z.dtype)
        if HAS_BASE:
            redo += tl.load(base_ptr + (tl.load(origins_ptr + seg) + block_row) + j, mask=later, other=0.0).to(z.dtype)
        y = tl.where(later, redo, y)
        seg += 1
        boundary = tl.load(starts_ptr + seg)
    tl.store(out_ptr + (block_row - row_begin) + j, y.to(out_ptr.dtype.element_ty), mask=valid)


@triton.jit(do_not_specialize=TRANSPOSE_ARGS_NOT_SPECIALISED)
def _transpose_kernel(grad_ptr, partial_ptr, slots_ptr, u_ptr, starts_ptr, scales_ptr,
                      row_begin, row_end, group_offset, first_block, seed_key, n_segments,
                      n_blocks, n_programs,
                      LOG_L: tl.constexpr, SEARCH_STEPS: tl.constexpr, WANT_DOT: tl.constexpr):
    # Σ_b Π_bᵀ G_b H (scale ⊙ g_b) over rows [row_begin, row_end) (g[r − row_begin]), program p
    # taking blocks p, p + n_programs, … of the launch's n_blocks. With WANT_DOT, slot b + i of
    # ``slots`` gets Σ g_r z_r over the rows of block b in segment i, z the unscaled forward output
    # recomputed here from u.
    L: tl.constexpr = 1 << LOG_L
    pid = tl.program_id(0)
    j = tl.arange(0, L)
    ju = j.to(tl.uint32)
    acc = tl.zeros((L,), dtype=partial_ptr.dtype.element_ty)
    if WANT_DOT:
        u = tl.load(u_ptr + j).to(acc.dtype)
    first = (row_begin - group_offset) // L
    # A while loop rather than range(): Triton's CPU interpreter cannot index a range with a
    # runtime scalar under NumPy ≥ 2.4; compiled, both are the same scf loop.
    local = pid
    while local < n_blocks:  # this program's own trip count: no masked iterations
        block = first + local
        key = _block_key(seed_key.to(tl.uint32), (first_block + block).to(tl.uint32))
        block_row = group_offset + block.to(tl.int64) * L
        lo = (tl.maximum(block_row, row_begin) - block_row).to(tl.int32)  # valid entries: lo ≤ j < hi
        hi = (tl.minimum(block_row + L, row_end) - block_row).to(tl.int32)
        g = tl.load(grad_ptr + (block_row - row_begin) + j, mask=(j >= lo) & (j < hi), other=0.0).to(acc.dtype)
        seg0 = _first_segment(block_row + lo, starts_ptr, n_segments, SEARCH_STEPS)
        scaled = g * tl.load(scales_ptr + seg0).to(acc.dtype)
        in_segment = tl.zeros_like(j)  # 0 for seg0, k for the k-th segment starting inside the block
        seg = seg0 + 1
        boundary = tl.load(starts_ptr + seg)
        while boundary < block_row + hi:  # the segments that start inside this block (rare)
            later = j >= (boundary - block_row).to(tl.int32)
            scaled = tl.where(later, g * tl.load(scales_ptr + seg).to(acc.dtype), scaled)
            in_segment += later.to(tl.int32)
            seg += 1
            boundary = tl.load(starts_ptr + seg)
        gauss = _normalised_gaussians(key, ju, LOG_L)
        if WANT_DOT:
            gz = g * _block_transform(u, gauss, key, ju, LOG_L)
            k = 0
            while k < seg - seg0:
                tl.store(slots_ptr + local + seg0 + k, tl.sum(tl.where(in_segment == k, gz, 0.0), axis=0))
                k += 1
        # The adjoint of H G Π, steps reversed: Πᵀ G H (H and G are symmetric).
        w = wht(scaled, LOG_L) * gauss.to(acc.dtype)
        acc += tl.gather(w, _permuted_index(key, ju, LOG_L, True).to(tl.int32), 0)
        local += n_programs
    tl.store(partial_ptr + pid.to(tl.int64) * L + j, acc)


def search_steps(n_segments: int) -> int:
    """Binary-search steps that find one of ``n_segments`` segments."""
    return max(1, math.ceil(math.log2(max(n_segments, 1))) + 1)


def num_programs(device: torch.device, n_blocks: int) -> int:
    """Persistent transpose programs: 4 per SM on a GPU, a few under the interpreter."""
    if device.type == "cuda":
        return min(n_blocks, 4 * torch.cuda.get_device_properties(device).multi_processor_count)
    return min(n_blocks, 4)


def block_range(block_size: int, group_offset: int, row_begin: int, row_end: int) -> tuple[int, int]:
    """(log₂ L, number of blocks overlapping rows [row_begin, row_end))."""
    log_l = block_size.bit_length() - 1
    if block_size != 1 << log_l:
        raise ValueError(f"the Fastfood kernel takes blocks of 2^k entries, got {block_size}")
    if not group_offset <= row_begin < row_end:
        raise ValueError(f"empty or misplaced row range [{row_begin}, {row_end}) for a group at {group_offset}")
    first = (row_begin - group_offset) // block_size
    last = (row_end - 1 - group_offset) // block_size
    return log_l, last - first + 1


def fastfood_forward(u: torch.Tensor, out: torch.Tensor, *, seed_key: int, block_size: int, first_block: int,
                     group_offset: int, row_begin: int, row_end: int, segment_starts: torch.Tensor,
                     segment_scales: torch.Tensor, base: torch.Tensor | None = None,
                     base_origins: torch.Tensor | None = None) -> torch.Tensor:
    """Rows [row_begin, row_end) of P θ_d (+ θ₀), written into ``out``. One launch.

    Args:
        u: (block_size,) contiguous H B θ_d (θ_d zero-padded), float32 or float64: the compute dtype.
        out: contiguous, ``row_end − row_begin`` entries, any float dtype.
        seed_key: ``fastfood_random.seed_key(seed)``. The group of blocks of size ``block_size``
            starts at flat row ``group_offset``; its first block is numbered ``first_block``.
        segment_starts: (m + 1,) int64: the first flat row of each segment, ascending, then
            :data:`SEGMENT_SENTINEL`; ``segment_starts[0] ≤ row_begin``.
        segment_scales: (m,) the factor of each segment's rows (any float dtype).
        base, base_origins: optional θ₀: the entry of row r in segment i is
            ``base.view(-1)[base_origins[i] + r]`` (int64 origins, in elements of base's dtype),
            so the segments' tensors may lie anywhere in memory (see module doc).
    """
    log_l, n_blocks = block_range(block_size, group_offset, row_begin, row_end)
    _check_compute(u.dtype, block_size)
    _check_input(u, block_size)
    if out.numel() != row_end - row_begin or not out.is_contiguous():
        raise ValueError(f"out must be contiguous with {row_end - row_begin} entries, got {tuple(out.shape)}")
    if (base is None) != (base_origins is None):
        raise ValueError("pass base and base_origins together")
    n_segments = segment_scales.numel()
    with on_device(out.device):
        _forward_kernel[(n_blocks,)](
            u, out, base if base is not None else out, segment_starts, segment_scales,
            base_origins if base_origins is not None else segment_starts,
            row_begin, row_end, group_offset, first_block, seed_key, n_segments,
            LOG_L=log_l, SEARCH_STEPS=search_steps(n_segments), HAS_BASE=base is not None,
            **launch_options(block_size, u.dtype),
        )
    return out


def fastfood_transpose(grad: torch.Tensor, *, seed_key: int, block_size: int, first_block: int,
                       group_offset: int, row_begin: int, row_end: int, segment_starts: torch.Tensor,
                       segment_scales: torch.Tensor, dtype: torch.dtype, u: torch.Tensor | None = None,
                       segment_slots: torch.Tensor | None = None):
    """v = Σ_b Π_bᵀ G_b H (scale ⊙ g_b) over rows [row_begin, row_end) of ``grad`` (contiguous,
    that many entries, any float dtype), computed in ``dtype``; Pᵀ(scale ⊙ g) = (B H v)[:d]. One launch.

    Returns v, (block_size,) in ``dtype``; with ``u`` (= H B θ_d) also the (m,) float64 vector of
    Σ_{r ∈ segment i} g_r (Pθ_d)_r / scale_r, the unscaled dot products that are the gradients of
    per-segment scales: ``(v, dots)``. ``segment_slots`` (with ``u``) is
    :func:`segment_slot_bounds` for this launch, computed once by the caller.
    """
    log_l, n_blocks = block_range(block_size, group_offset, row_begin, row_end)
    _check_compute(dtype, block_size)
    if u is not None:
        _check_input(u, block_size)
        if segment_slots is None:
            raise ValueError("pass segment_slots (segment_slot_bounds of this launch) with u")
    if grad.numel() != row_end - row_begin or not grad.is_contiguous():
        raise ValueError(f"grad must be contiguous with {row_end - row_begin} entries, got {tuple(grad.shape)}")
    programs = num_programs(grad.device, n_blocks)
    n_segments = segment_scales.numel()
    partial = torch.empty(programs, block_size, dtype=dtype, device=grad.device)
    slots = torch.zeros(n_blocks + n_segments if u is not None else 1, dtype=dtype, device=grad.device)
    with on_device(grad.device):
        _transpose_kernel[(programs,)](
            grad, partial, slots, u if u is not None else partial, segment_starts, segment_scales,
            row_begin, row_end, group_offset, first_block, seed_key, n_segments, n_blocks, programs,
            LOG_L=log_l, SEARCH_STEPS=search_steps(n_segments), WANT_DOT=u is not None,
            **launch_options(block_size, dtype),
        )
    v = partial.sum(0)
    if u is None:
        return v
    cumulative = torch.cat([slots.new_zeros(1, dtype=torch.float64), slots.double().cumsum(0)])
    return v, cumulative[segment_slots[1]] - cumulative[segment_slots[0]]


def _check_compute(dtype: torch.dtype, block_size: int) -> None:
    if dtype not in MAX_LOG_BLOCK:
        raise ValueError(f"the Fastfood kernel computes in float32 or float64, not {dtype}")
    if block_size > max_block_size(dtype):
        raise ValueError(f"the Fastfood kernel takes blocks of ≤ {max_block_size(dtype)} entries in {dtype}, "
                         f"got {block_size}")


def _check_input(u: torch.Tensor, block_size: int) -> None:
    if u.shape != (block_size,) or not u.is_contiguous():
        raise ValueError(f"u must be a contiguous ({block_size},) tensor, got {tuple(u.shape)}")


def segment_slot_bounds(starts: list[int], block_size: int, group_offset: int, row_begin: int,
                        row_end: int) -> torch.Tensor:
    """(2, m) int64: segment i's λ-dot slots are cumulative indices [bounds[0, i], bounds[1, i]).

    Slot b + i holds the partial sum of block b (counted from the launch's first block) in
    segment i (see module doc), so segment i owns slots first_block(i) + i … last_block(i) + i;
    a segment outside [row_begin, row_end) owns none. ``starts``: the m segments' first rows.
    """
    first = (row_begin - group_offset) // block_size
    ends = [*starts[1:], row_end]
    lower, upper = [], []
    for i, (start, end) in enumerate(zip(starts, ends)):
        start, end = max(start, row_begin), min(end, row_end)
        if start >= end:
            lower.append(0)
            upper.append(0)
        else:
            lower.append((start - group_offset) // block_size - first + i)
            upper.append((end - 1 - group_offset) // block_size - first + i + 1)
    return torch.tensor([lower, upper], dtype=torch.int64)
