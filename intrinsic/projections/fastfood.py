"""Fastfood projection (Le, Sarlós & Smola 2013): blocks V = H·G·Π·H·B.

One block of size L (a power of two) maps x ∈ R^L to V x, with B a random ±1 diagonal, H the
unnormalised Walsh–Hadamard matrix, Π a uniform random permutation ((Πv)_k = v_{π(k)}) and G a
Gaussian diagonal. Every column of H G Π H B has norm exactly √(L·ΣG²), so G is stored divided
by that: each block has unit-norm columns, and every entry has expected square 1/L. Entries of
segment i are then multiplied by √(L/N_i) (N_i per the normalisation, see ``base``).

Two block layouts, a named option recorded with every result:

* ``"stacked"`` (default; the textbook layout): θ_d is zero-padded to L = 2^⌈log₂ d⌉ (or a
  larger ``block_size``), and ⌈D/L⌉ independent blocks are stacked to cover the flat vector,
  the last one truncated. Cost O(D log d) per product; each block fits one GPU thread block
  for d ≤ 32768.
* ``"per_tensor"`` (the reference Intrinsic-SAID code): one block per tensor of n_i entries,
  of size L_i = 2^⌈log₂ max(n_i, d)⌉, truncated to n_i entries. Taking L_i ≥ d is how we handle
  d larger than a tensor's padded size: every entry of θ_d reaches every tensor (the reference
  code silently dropped θ_d beyond L_i). Cost O(Σ L_i log L_i).

Random state is stored per block: signs int8, permutation int16 (int32 when L > 2^15) and
G float32, i.e. 7 bytes per entry of the covered length (``state_nbytes()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .. import seeding
from ..hadamard import hadamard_transform
from .base import Projection, next_power_of_two

LAYOUTS = ("stacked", "per_tensor")
STATE_CHUNK_ELEMENTS = 1 << 22  # entries of random state drawn from one stream
WORK_CHUNK_ELEMENTS = 1 << 22  # entries transformed at once in matvec / rmatvec


@dataclass(frozen=True)
class BlockGroup:
    """``count`` blocks of size ``block_size`` covering output rows [offset, offset + length)."""

    offset: int
    length: int
    block_size: int
    count: int
    state_offset: int  # where this group's random state starts in the flat state buffers


class FastfoodProjection(Projection):
    name = "fastfood"

    def __init__(
        self,
        d: int,
        segment_sizes: Sequence[int],
        seed: int = 0,
        normalization: str = "global",
        layout: str = "stacked",
        block_size: int | None = None,
    ):
        super().__init__(d, segment_sizes, seed, normalization)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown Fastfood layout {layout!r}; choose one of {LAYOUTS}")
        if block_size is not None and (layout != "stacked" or block_size < d or block_size & (block_size - 1)):
            raise ValueError(
                f"block_size={block_size} needs layout='stacked' and a power of two ≥ d={d}"
            )
        self.layout = layout
        self.groups = self._plan_groups(block_size)
        block_sizes = self._block_size_per_segment()
        bounds = torch.tensor([0, *self.segment_sizes]).cumsum(0).tolist()
        self._segment_ranges = [
            (bounds[i], bounds[i + 1], (L / self.normalizer(i)) ** 0.5) for i, L in enumerate(block_sizes)
        ]
        self._draw_state()

    def _plan_groups(self, block_size: int | None) -> list[BlockGroup]:
        if self.layout == "stacked":
            L = block_size or next_power_of_two(self.d)
            return [BlockGroup(0, self.D, L, -(-self.D // L), 0)]
        groups, offset, state_offset = [], 0, 0
        for n in self.segment_sizes:
            L = next_power_of_two(max(n, self.d))
            groups.append(BlockGroup(offset, n, L, 1, state_offset))
            offset += n
            state_offset += L
        return groups

    def _block_size_per_segment(self) -> list[int]:
        if self.layout == "stacked":
            return [self.groups[0].block_size] * len(self.segment_sizes)
        return [group.block_size for group in self.groups]

    def _draw_state(self) -> None:
        signs, perms, gauss = [], [], []
        for g_index, group in enumerate(self.groups):
            L = group.block_size
            per_chunk = max(1, STATE_CHUNK_ELEMENTS // L)
            for c_index, first in enumerate(range(0, group.count, per_chunk)):
                count = min(per_chunk, group.count - first)
                gen = seeding.generator(self.seed, "fastfood", g_index, c_index)
                signs.append(torch.randint(0, 2, (count, L), generator=gen, dtype=torch.int8) * 2 - 1)
                if count == 1:
                    perm = torch.randperm(L, generator=gen)[None]
                else:
                    perm = torch.argsort(torch.rand(count, L, generator=gen), dim=1)
                perms.append(perm.to(torch.int16 if L <= 2**15 else torch.int32))
                g = torch.randn(count, L, generator=gen)
                # Unit-norm columns: ‖H G Π H B e_j‖² = L·ΣG² for unnormalised H.
                gauss.append(g / (L * g.square().sum(1, keepdim=True)).sqrt())
        flat = lambda parts: torch.cat([p.reshape(-1) for p in parts])  # noqa: E731
        self.register_buffer("signs", flat(signs), persistent=False)
        self.register_buffer("permutation", flat(perms), persistent=False)
        self.register_buffer("gauss", flat(gauss), persistent=False)

    def _chunks(self, group: BlockGroup):
        """Yield (first block, block count, output start, output stop) in chunks of ≤ 2^22 entries.

        Working chunk by chunk keeps every temporary (the int64 permutation, the transforms)
        at O(2^22) entries whatever D is; only the output itself is O(D).
        """
        L = group.block_size
        per_chunk = max(1, WORK_CHUNK_ELEMENTS // L)
        for first in range(0, group.count, per_chunk):
            count = min(per_chunk, group.count - first)
            start = group.offset + first * L
            stop = min(group.offset + group.length, start + count * L)
            yield first, count, start, stop

    def _state(self, group: BlockGroup, first: int, count: int, dtype: torch.dtype):
        """(signs, permutation as int64, scaled G) of blocks [first, first + count), shape (count, L)."""
        L = group.block_size
        begin = group.state_offset + first * L
        span, shape = slice(begin, begin + count * L), (count, L)
        return (
            self.signs[span].view(shape),
            self.permutation[span].view(shape).long(),
            self.gauss[span].view(shape).to(dtype),
        )

    def _scale_rows_(self, values: torch.Tensor, start: int) -> torch.Tensor:
        """Multiply ``values`` (output rows start, start+1, …) by their segments' scales."""
        stop = start + values.numel()
        for seg_start, seg_stop, scale in self._segment_ranges:
            lo, hi = max(start, seg_start), min(stop, seg_stop)
            if lo < hi:
                values[lo - start : hi - start].mul_(scale)
        return values

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        out = theta_d.new_empty(self.D)
        for group in self.groups:
            x = theta_d.new_zeros(group.block_size)
            x[: self.d] = theta_d
            for first, count, start, stop in self._chunks(group):
                signs, perm, gauss = self._state(group, first, count, theta_d.dtype)
                z = hadamard_transform(signs * x)  # H B x, one row per block
                z = hadamard_transform(torch.gather(z, 1, perm).mul_(gauss))  # H G Π (·)
                out[start:stop] = z.view(-1)[: stop - start]
                self._scale_rows_(out[start:stop], start)
        return out

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        out = grad.new_zeros(self.d)
        for group in self.groups:
            L = group.block_size
            for first, count, start, stop in self._chunks(group):
                signs, perm, gauss = self._state(group, first, count, grad.dtype)
                w = grad.new_zeros(count * L)
                w[: stop - start] = grad[start:stop]
                self._scale_rows_(w[: stop - start], start)
                w = hadamard_transform(w.view(count, L)).mul_(gauss)  # G H w
                w = hadamard_transform(torch.empty_like(w).scatter_(1, perm, w))  # H Πᵀ (·)
                out += w.mul_(signs).sum(0)[: self.d]  # Σ over blocks of B (·)
        return out

    def config(self) -> dict:
        cfg = {**super().config(), "layout": self.layout}
        if self.layout == "stacked":
            cfg["block_size"] = self.groups[0].block_size
        return cfg
