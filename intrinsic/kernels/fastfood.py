"""Triton Fastfood kernels: P θ_d and Pᵀ g in one pass each, with no stored random state.

Block b of a stacked Fastfood projection is V_b = H G_b Π_b H B, with B shared by all blocks
(``intrinsic.projections.fastfood_random``), so the launcher computes u = H B θ_d once (L values)
and the kernels do the per-block part. One program owns one block of L = 2^LOG_L entries
(L ≤ :func:`max_block_size` of the compute dtype). The forward program loads u (the same L
values for every block, so they stay in L2), regenerates its block's Gaussians and permutation
from the seed (matching the reference bit for bit in the integers), and computes in registers

    u → Π → G → H → × (segment scale / ‖G‖√L) (→ + θ₀)

writing each output entry once. The transpose program does the adjoint, Π_bᵀ G_b H (scale ⊙ g_b),
on its blocks and accumulates over them; the launcher sums the per-program partials
(deterministic; no atomics) and applies B H once.

**One launch covers many tensors.** Rows are flat indices into the concatenation of m segments
(tensors). Each segment i has a first row ``starts[i]`` and a scale; the base θ₀ is read through
an *origin* table: θ₀ of row r lives at ``base_ptr + origins[i] + r``, so the m tensors of θ₀
stay where the model keeps them. The output (or g) is one contiguous buffer over the launch's
rows. A program reads its block's first segment and its normaliser 1/(‖G_b‖√L) from per-block
tables (:func:`block_tables`, computed once per projection: the norm is a reduction over the
whole block, cheaper to keep than to redo at every product), and finds the later segments by
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

from typing import NamedTuple

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
ENTRY_MULTIPLIER = tl.constexpr(_random.ENTRY_MULTIPLIER)
ROUNDS = tl.constexpr(_random.ROUNDS)
STREAM_WIDTH = tl.constexpr(1 + 3 * _random.ROUNDS)  # per block: K_b, then (a_r, c_r) per round, then a_r⁻¹ per round

# Largest block per compute dtype: one program holds L values of the dtype in registers. The
# transpose with λ dots spills registers from float32 2^13 (float64 2^12) on; float64 2^15 would
# need 256 KiB of shared memory. ``scripts/kernel_resources.py`` prints the table behind the caps.
MAX_LOG_BLOCK = {torch.float32: 12, torch.float64: 11}
SEGMENT_SENTINEL = 1 << 62  # the start of a segment after the last: beyond every row
FORWARD_ARGS_NOT_SPECIALISED = ["row_begin", "row_end", "group_offset"]
TRANSPOSE_ARGS_NOT_SPECIALISED = ["block_begin", *FORWARD_ARGS_NOT_SPECIALISED, "n_blocks", "n_programs"]


def max_block_size(dtype: torch.dtype) -> int:
    """Largest Fastfood block the kernels take for compute dtype ``dtype`` (0 if none)."""
    return 1 << MAX_LOG_BLOCK[dtype] if dtype in MAX_LOG_BLOCK else 0


# Hardware approximations (one MUFU instruction each, ≤ 2 ulp on [0, 1] and [0, 2π)); the
# interpreter has no libdevice, so there the exact functions stand in.
EXACT_MATH = tl.constexpr(interpreting())


@triton.jit
def _log2(x):
    return tl.log2(x) if EXACT_MATH else libdevice.fast_log2f(x)


@triton.jit
def _cos(x):
    return tl.cos(x) if EXACT_MATH else libdevice.fast_cosf(x)


@triton.jit
def _sin(x):
    return tl.sin(x) if EXACT_MATH else libdevice.fast_sinf(x)


@triton.jit
def mix32(x):
    """lowbias32 on uint32 (wrapping multiplication)."""
    x = x ^ (x >> MIX_SHIFT_1)
    x = x * MIX_MULTIPLIER_1
    x = x ^ (x >> MIX_SHIFT_2)
    x = x * MIX_MULTIPLIER_2
    return x ^ (x >> MIX_SHIFT_3)


@triton.jit
def _stream(streams_ptr, block, column):
    """Column ``column`` (uint32) of block ``block``'s row of the random-stream table."""
    return tl.load(streams_ptr + block * STREAM_WIDTH + column).to(tl.uint32, bitcast=True)


@triton.jit
def _gaussians(key, LOG_L: tl.constexpr):
    """Unnormalised Gaussians G_0 … G_{L−1} (float32) of a block, in entry order: hash k gives the
    pair (G_2k, G_2k+1), both outputs of one Box–Muller draw (a block of one keeps the cosine)."""
    HALF: tl.constexpr = (1 << LOG_L) // 2 if LOG_L > 0 else 1
    k = tl.arange(0, HALF).to(tl.uint32)
    h = mix32(key ^ (k * ENTRY_MULTIPLIER))
    # Floats in [1, 2) with the hash bits as mantissa: 1 + k/2^16, exact, without a conversion.
    high = (((h >> 9) & 0x7FFF80) | 0x3F800000).to(tl.float32, bitcast=True)  # k = bits 16–31
    low = (((h << 7) & 0x7FFF80) | 0x3F800000).to(tl.float32, bitcast=True)  # k = bits 0–15
    radius = tl.sqrt(-1.3862943611198906 * _log2(2.0 - high))  # −2 ln 2 · log₂ u1, u1 = (2^16 − k)/2^16 ∈ (0, 1]
    angle = 6.283185307179586 * (low - 1.0)  # 2π u2, u2 = k/2^16 ∈ [0, 1)
    if LOG_L == 0:
        gauss = radius * _cos(angle)
    else:
        gauss = tl.reshape(tl.join(radius * _cos(angle), radius * _sin(angle)), (1 << LOG_L,))
    return gauss


@triton.jit
def _permuted_index(streams_ptr, block, j, LOG_L: tl.constexpr, INVERSE: tl.constexpr):
    """π(j) (or π⁻¹(j)) for uint32 j: two rounds of x ↦ x' ⊕ (x' ≫ ⌈k/2⌉), x' = (a x + c) mod 2^k,
    with the block's round constants read from its row of the stream table."""
    MASK: tl.constexpr = (1 << LOG_L) - 1
    SHIFT: tl.constexpr = (LOG_L + 1) // 2
    x = j
    for i in tl.static_range(ROUNDS):
        if INVERSE:
            c = _stream(streams_ptr, block, 2 + 2 * (ROUNDS - 1 - i))
            inverse = _stream(streams_ptr, block, 1 + 2 * ROUNDS + (ROUNDS - 1 - i))
            x = x ^ (x >> SHIFT)
            x = (inverse * (x - c)) & MASK
        else:
            a = _stream(streams_ptr, block, 1 + 2 * i)
            c = _stream(streams_ptr, block, 2 + 2 * i)
            x = (a * x + c) & MASK
            x = x ^ (x >> SHIFT)
    return x


@triton.jit
def _block_norms_kernel(norms_ptr, streams_ptr, LOG_L: tl.constexpr):
    # norms[b] = 1/√(L·ΣG²) of block b: the scale that gives H G Π H B unit-norm columns.
    L: tl.constexpr = 1 << LOG_L
    block = tl.program_id(0)
    gauss = _gaussians(_stream(streams_ptr, block, 0), LOG_L)
    tl.store(norms_ptr + block, 1.0 / tl.sqrt(L * tl.sum(gauss * gauss, axis=0)))


@triton.jit
def _block_transform(u, gauss, streams_ptr, block, j, LOG_L: tl.constexpr):
    """H G Π u for one block (u = H B θ_d in its compute dtype; G not normalised)."""
    x = tl.gather(u, _permuted_index(streams_ptr, block, j, LOG_L, False).to(tl.int32), 0)
    return wht(x * gauss.to(x.dtype), LOG_L)


@triton.jit(do_not_specialize=FORWARD_ARGS_NOT_SPECIALISED)
def _forward_kernel(u_ptr, out_ptr, base_ptr, starts_ptr, scales_ptr, origins_ptr, segments_ptr, norms_ptr, streams_ptr,
                    fixups_ptr, row_begin, row_end, group_offset,
                    LOG_L: tl.constexpr, HAS_BASE: tl.constexpr, FIXUP: tl.constexpr):
    # Rows are flat indices; the group's blocks start at row group_offset. This launch writes rows
    # [row_begin, row_end) to out[r − row_begin]; θ₀ of row r in segment i is base[origins[i] + r].
    # starts ends with a sentinel beyond every row. Without FIXUP, program p takes the p-th block
    # of the rows and skips it unless it lies inside the rows and inside one segment (the common
    # case: no per-entry masks or segment walk); with FIXUP, program p takes block fixups[p], one
    # of those skipped, and handles it entry by entry.
    L: tl.constexpr = 1 << LOG_L
    if FIXUP:
        block = tl.load(fixups_ptr + tl.program_id(0))
    else:
        block = ((row_begin - group_offset) // L + tl.program_id(0)).to(tl.int32)
    block_row = group_offset + block.to(tl.int64) * L
    seg = tl.load(segments_ptr + block)
    boundary = tl.load(starts_ptr + seg + 1)  # the next segment's first row
    if not FIXUP:
        if (block_row < row_begin) | (block_row + L > row_end) | (boundary < block_row + L):
            return
    j = tl.arange(0, L)
    gauss = _gaussians(_stream(streams_ptr, block, 0), LOG_L)
    z = _block_transform(tl.load(u_ptr + j), gauss, streams_ptr, block, j.to(tl.uint32), LOG_L)
    norm = tl.load(norms_ptr + block)
    y = z * (tl.load(scales_ptr + seg) * norm).to(z.dtype)
    if FIXUP:
        # Per entry, only int32 offsets j within the block: the 64-bit row arithmetic is per block.
        # θ₀ is read segment by segment, each through its own origin and only on its own rows.
        lo = (tl.maximum(block_row, row_begin) - block_row).to(tl.int32)  # valid entries: lo ≤ j < hi
        hi = (tl.minimum(block_row + L, row_end) - block_row).to(tl.int32)
        valid = (j >= lo) & (j < hi)
        if HAS_BASE:
            mine = valid & (j < (tl.minimum(boundary, block_row + L) - block_row).to(tl.int32))
            theta_0 = tl.load(base_ptr + (tl.load(origins_ptr + seg) + block_row) + j, mask=mine, other=0.0)
            y += theta_0.to(z.dtype)
        seg += 1
        while boundary < block_row + hi:  # the segments that start inside this block: redo their entries
            after = tl.load(starts_ptr + seg + 1)
            mine = valid & (j >= (boundary - block_row).to(tl.int32))
            mine = mine & (j < (tl.minimum(after, block_row + L) - block_row).to(tl.int32))
            redo = z * (tl.load(scales_ptr + seg) * norm).to(z.dtype)
            if HAS_BASE:
                theta_0 = tl.load(base_ptr + (tl.load(origins_ptr + seg) + block_row) + j, mask=mine, other=0.0)
                redo += theta_0.to(z.dtype)
            y = tl.where(mine, redo, y)
            seg += 1
            boundary = after
        tl.store(out_ptr + (block_row - row_begin) + j, y.to(out_ptr.dtype.element_ty), mask=valid)
    else:
        if HAS_BASE:
            y += tl.load(base_ptr + (tl.load(origins_ptr + seg) + block_row) + j).to(z.dtype)
        tl.store(out_ptr + (block_row - row_begin) + j, y.to(out_ptr.dtype.element_ty))


@triton.jit(do_not_specialize=TRANSPOSE_ARGS_NOT_SPECIALISED)
def _transpose_kernel(grad_ptr, partial_ptr, slots_ptr, u_ptr, starts_ptr, scales_ptr, segments_ptr, norms_ptr,
                      streams_ptr, block_begin, row_begin, row_end, group_offset, n_blocks, n_programs,
                      LOG_L: tl.constexpr, WANT_DOT: tl.constexpr):
    # Σ_b Π_bᵀ G_b H (scale ⊙ g_b) over rows [row_begin, row_end) (g[r − row_begin]), program p
    # taking blocks block_begin + p, block_begin + p + n_programs, … of the launch's n_blocks. With
    # WANT_DOT, slot b + i of ``slots`` gets Σ g_r z_r over the rows of block b in segment i, z the
    # unscaled forward output
    # recomputed here from u.
    L: tl.constexpr = 1 << LOG_L
    pid = tl.program_id(0)
    j = tl.arange(0, L)
    ju = j.to(tl.uint32)
    acc = tl.zeros((L,), dtype=partial_ptr.dtype.element_ty)
    if WANT_DOT:
        u = tl.load(u_ptr + j).to(acc.dtype)
    # A while loop rather than range(): Triton's CPU interpreter cannot index a range with a
    # runtime scalar under NumPy ≥ 2.4; compiled, both are the same scf loop.
    local = pid
    while local < n_blocks:  # this program's own trip count: no masked iterations
        block = block_begin + local
        block_row = group_offset + block.to(tl.int64) * L
        lo = (tl.maximum(block_row, row_begin) - block_row).to(tl.int32)  # valid entries: lo ≤ j < hi
        hi = (tl.minimum(block_row + L, row_end) - block_row).to(tl.int32)
        g = tl.load(grad_ptr + (block_row - row_begin) + j, mask=(j >= lo) & (j < hi), other=0.0).to(acc.dtype)
        seg0 = tl.load(segments_ptr + block)
        norm = tl.load(norms_ptr + block)
        scaled = g * (tl.load(scales_ptr + seg0) * norm).to(acc.dtype)
        in_segment = tl.zeros_like(j)  # 0 for seg0, k for the k-th segment starting inside the block
        seg = seg0 + 1
        boundary = tl.load(starts_ptr + seg)
        while boundary < block_row + hi:  # the segments that start inside this block (rare)
            later = j >= (boundary - block_row).to(tl.int32)
            scaled = tl.where(later, g * (tl.load(scales_ptr + seg) * norm).to(acc.dtype), scaled)
            in_segment += later.to(tl.int32)
            seg += 1
            boundary = tl.load(starts_ptr + seg)
        gauss = _gaussians(_stream(streams_ptr, block, 0), LOG_L)
        if WANT_DOT:
            gz = g * _block_transform(u, gauss, streams_ptr, block, ju, LOG_L)
            k = 0
            while k < seg - seg0:
                tl.store(slots_ptr + local + seg0 + k, tl.sum(tl.where(in_segment == k, gz, 0.0), axis=0) * norm)
                k += 1
        # The adjoint of H G Π, steps reversed: Πᵀ G H (H and G are symmetric).
        w = wht(scaled, LOG_L) * gauss.to(acc.dtype)
        acc += tl.gather(w, _permuted_index(streams_ptr, block, ju, LOG_L, True).to(tl.int32), 0)
        local += n_programs
    tl.store(partial_ptr + pid.to(tl.int64) * L + j, acc)


class BlockTables(NamedTuple):
    """Per-block state of one group of blocks, computed once per projection and device by
    :func:`block_tables`; row b describes block b of the group (counted from its first row).

    segments: (n,) int32, the segment that holds the block's first row (0 before the first segment).
    norms: (n,) float32, 1/√(L·ΣG²) of the block's Gaussians (a reduction over the whole block,
        cheaper to keep than to redo at every product).
    streams: (n, STREAM_WIDTH) int32, the block's random-stream constants
        (``fastfood_random.stream_table``) as 32-bit patterns.
    fixups: (k,) int32, ascending: the blocks a product over all the group's rows computes entry by
        entry, those holding a segment boundary or the group's last row short of a whole block.
    rows: the number of rows of the group.
    """

    segments: torch.Tensor
    norms: torch.Tensor
    streams: torch.Tensor
    fixups: torch.Tensor
    rows: int


def block_tables(*, seed: int, block_size: int, first_block: int, group_offset: int, group_rows: int,
                 segment_starts: torch.Tensor) -> BlockTables:
    """:class:`BlockTables` of the group of ``group_rows`` rows from flat row ``group_offset`` in
    blocks of ``block_size``, numbered from ``first_block`` across the projection; on
    ``segment_starts``' device. The norms come from the kernels' own generator (one launch)."""
    log_l = block_size.bit_length() - 1
    if block_size != 1 << log_l or group_rows < 1:
        raise ValueError(f"need ≥ 1 row and blocks of 2^k entries, got {group_rows} rows, blocks of {block_size}")
    n_blocks = -(-group_rows // block_size)
    device = segment_starts.device
    rows = group_offset + block_size * torch.arange(n_blocks, dtype=torch.int64, device=device)
    segments = (torch.searchsorted(segment_starts[:-1], rows, right=True) - 1).clamp_min(0).to(torch.int32)
    table = _random.stream_table(seed, first_block, n_blocks)
    streams = torch.where(table >= 1 << 31, table - (1 << 32), table).to(torch.int32).to(device)  # same bits
    norms = torch.empty(n_blocks, dtype=torch.float32, device=device)
    with on_device(device):
        _block_norms_kernel[(n_blocks,)](norms, streams, LOG_L=log_l, **launch_options(block_size, torch.float32))
    fixups = fixup_blocks(segment_starts, block_size, group_offset, group_offset, group_offset + group_rows)
    return BlockTables(segments, norms, streams, fixups.to(device), group_rows)


def fixup_blocks(segment_starts: torch.Tensor, block_size: int, group_offset: int, row_begin: int,
                 row_end: int) -> torch.Tensor:
    """int32 (k,), ascending: the blocks (counted from ``group_offset``) that overlap rows
    [row_begin, row_end) but do not lie inside them and inside one segment (on the CPU)."""
    first = (row_begin - group_offset) // block_size
    last = (row_end - 1 - group_offset) // block_size
    starts = segment_starts.cpu()
    inside = starts[(starts > row_begin) & (starts < row_end) & ((starts - group_offset) % block_size != 0)]
    blocks = set(((inside - group_offset) // block_size).tolist())
    if (row_begin - group_offset) % block_size:
        blocks.add(first)
    if (row_end - group_offset) % block_size:
        blocks.add(last)
    return torch.tensor(sorted(blocks), dtype=torch.int32)


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


def fastfood_forward(u: torch.Tensor, out: torch.Tensor, *, tables: BlockTables, block_size: int,
                     group_offset: int, row_begin: int, row_end: int, segment_starts: torch.Tensor,
                     segment_scales: torch.Tensor, base: torch.Tensor | None = None,
                     base_origins: torch.Tensor | None = None) -> torch.Tensor:
    """Rows [row_begin, row_end) of P θ_d (+ θ₀), written into ``out``.

    One launch for the blocks inside the rows and inside one segment, and one for the others
    (:func:`fixup_blocks`, computed entry by entry), if any.

    Args:
        u: (block_size,) contiguous H B θ_d (θ_d zero-padded), float32 or float64: the compute dtype.
        out: contiguous, ``row_end − row_begin`` entries, any float dtype.
        tables: :func:`block_tables` of the group of blocks of size ``block_size`` that starts
            at flat row ``group_offset`` (a range other than the whole group computes its
            fix-up blocks on the CPU).
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
    _check_tables(tables, block_size, group_offset, row_end)
    if row_begin == group_offset and row_end == group_offset + tables.rows:
        fixups = tables.fixups
    else:
        fixups = fixup_blocks(segment_starts, block_size, group_offset, row_begin, row_end).to(out.device)
    args = (u, out, base if base is not None else out, segment_starts, segment_scales,
            base_origins if base_origins is not None else segment_starts, *tables[:3], fixups,
            row_begin, row_end, group_offset)
    options = dict(LOG_L=log_l, HAS_BASE=base is not None, **fastfood_launch_options(block_size, u.dtype))
    with on_device(out.device):
        _forward_kernel[(n_blocks,)](*args, FIXUP=False, **options)
        if len(fixups):
            _forward_kernel[(len(fixups),)](*args, FIXUP=True, **options)
    return out


def fastfood_transpose(grad: torch.Tensor, *, tables: BlockTables, block_size: int, group_offset: int,
                       row_begin: int, row_end: int, segment_starts: torch.Tensor, segment_scales: torch.Tensor,
                       dtype: torch.dtype, u: torch.Tensor | None = None, segment_slots: torch.Tensor | None = None):
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
    _check_tables(tables, block_size, group_offset, row_end)
    programs = num_programs(grad.device, n_blocks)
    n_segments = segment_scales.numel()
    partial = torch.empty(programs, block_size, dtype=dtype, device=grad.device)
    slots = torch.zeros(n_blocks + n_segments if u is not None else 1, dtype=dtype, device=grad.device)
    with on_device(grad.device):
        _transpose_kernel[(programs,)](
            grad, partial, slots, u if u is not None else partial, segment_starts, segment_scales, *tables[:3],
            (row_begin - group_offset) // block_size, row_begin, row_end, group_offset, n_blocks, programs,
            LOG_L=log_l, WANT_DOT=u is not None, **launch_options(block_size, dtype),
        )
    v = partial.sum(0)
    if u is None:
        return v
    cumulative = torch.cat([slots.new_zeros(1, dtype=torch.float64), slots.double().cumsum(0)])
    return v, cumulative[segment_slots[1]] - cumulative[segment_slots[0]]


def fastfood_launch_options(L: int, dtype: torch.dtype = torch.float32) -> dict:
    """``num_warps`` and ``maxnreg`` for the fused forward. In float32 from 2^8 up, 16 entries a
    thread (at least 2 warps): fewer warps than the Hadamard rows, so the per-block work is shared
    by more entries (fewer instructions per entry, see ``scripts/kernel_resources.py``); one warp
    holding more than 16 entries a thread costs more. Otherwise as the Hadamard rows."""
    if dtype.itemsize > 4 or L < 256:
        return launch_options(L, dtype)
    warps = max(2, min(16, L // 512))
    return {"num_warps": warps, "maxnreg": min(255, 65536 // (32 * warps))}


def _check_compute(dtype: torch.dtype, block_size: int) -> None:
    if dtype not in MAX_LOG_BLOCK:
        raise ValueError(f"the Fastfood kernel computes in float32 or float64, not {dtype}")
    if block_size > max_block_size(dtype):
        raise ValueError(f"the Fastfood kernel takes blocks of ≤ {max_block_size(dtype)} entries in {dtype}, "
                         f"got {block_size}")


def _check_tables(tables: BlockTables, block_size: int, group_offset: int, row_end: int) -> None:
    needed = (row_end - 1 - group_offset) // block_size + 1
    dtypes = (tables.segments.dtype, tables.norms.dtype, tables.streams.dtype)
    if dtypes != (torch.int32, torch.float32, torch.int32) or min(map(len, tables[:3])) < needed:
        raise ValueError(f"tables must describe ≥ {needed} blocks: pass block_tables(...) of the group")


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
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        start, end = max(start, row_begin), min(end, row_end)
        if start >= end:
            lower.append(0)
            upper.append(0)
        else:
            lower.append((start - group_offset) // block_size - first + i)
            upper.append((end - 1 - group_offset) // block_size - first + i + 1)
    return torch.tensor([lower, upper], dtype=torch.int64)
