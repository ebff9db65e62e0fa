"""Very sparse random projection (Li, Hastie & Church 2006), stored as a CSR matrix.

Each entry of P is non-zero with probability s (default 1/√D) and then ±1/√(s·N) with equal
odds, so every entry has expected square 1/N (see ``base`` for N). That is ≈ s·D·d = d·√D
non-zeros, stored as int32 CSR indices and float32 values. Non-zero positions are drawn by
geometric gaps over the row-major flattening of P, one independent stream per chunk of rows,
so generation costs O(non-zeros), never O(D·d).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from .. import seeding
from .base import Projection

CHUNK_ELEMENTS = 1 << 26  # entries of P (not non-zeros) covered by one random stream
WORK_CHUNK_NONZEROS = 1 << 22  # non-zeros handled at once by rmatvec


class SparseProjection(Projection):
    name = "sparse"

    def __init__(
        self,
        d: int,
        segment_sizes: Sequence[int],
        seed: int = 0,
        normalization: str = "global",
        density: float | None = None,
    ):
        super().__init__(d, segment_sizes, seed, normalization)
        density = 1.0 / math.sqrt(self.D) if density is None else float(density)
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        self.density = density
        rows, cols, signs = self._draw_nonzeros()
        segment = torch.repeat_interleave(
            torch.arange(len(self.segment_sizes)), torch.tensor(self.segment_sizes)
        )
        row_scale = torch.tensor(
            [(density * self.normalizer(i)) ** -0.5 for i in range(len(self.segment_sizes))]
        )
        values = signs.float() * row_scale[segment[rows]]
        crow = torch.zeros(self.D + 1, dtype=torch.int64)
        crow[1:] = torch.bincount(rows, minlength=self.D).cumsum(0)
        index_dtype = torch.int32 if rows.numel() < 2**31 else torch.int64
        self.register_buffer("crow_indices", crow.to(index_dtype), persistent=False)
        self.register_buffer("col_indices", cols.to(index_dtype), persistent=False)
        self.register_buffer("values", values, persistent=False)

    def _draw_nonzeros(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positions (row, col, sorted by row then col) and signs of the non-zeros of P."""
        total = self.D * self.d
        rows_per_chunk = max(1, CHUNK_ELEMENTS // self.d)
        all_rows, all_cols, all_signs = [], [], []
        for index, start_row in enumerate(range(0, self.D, rows_per_chunk)):
            start = start_row * self.d
            stop = min(total, (start_row + rows_per_chunk) * self.d)
            g = seeding.generator(self.seed, "sparse", index)
            positions = _bernoulli_positions(stop - start, self.density, g) + start
            all_rows.append(positions // self.d)
            all_cols.append(positions % self.d)
            all_signs.append(torch.randint(0, 2, (positions.numel(),), generator=g, dtype=torch.int8) * 2 - 1)
        return torch.cat(all_rows), torch.cat(all_cols), torch.cat(all_signs)

    def _matrix(self, dtype: torch.dtype) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                self.crow_indices,
                self.col_indices,
                self.values.to(dtype),
                size=(self.D, self.d),
                check_invariants=False,
            )

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        return self._matrix(theta_d.dtype) @ theta_d

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        # Pᵀg = Σ_k value_k · g[row_k] added into column col_k, over chunks of ≈ 2^22 non-zeros.
        # (torch's CSR transpose product builds int64 copies of all indices: 2 GB and 10× slower
        # at D = 22.7 M, d = 10 000.)
        out = grad.new_zeros(self.d)
        crow = self.crow_indices
        for row_start, row_stop in self._row_chunks():
            a, b = int(crow[row_start]), int(crow[row_stop])
            row_lengths = crow[row_start + 1 : row_stop + 1] - crow[row_start:row_stop]
            rows = torch.repeat_interleave(torch.arange(row_start, row_stop, device=grad.device), row_lengths)
            out.index_add_(0, self.col_indices[a:b], self.values[a:b].to(grad.dtype) * grad[rows])
        return out

    def _row_chunks(self):
        """Row ranges [start, stop) of at most ``WORK_CHUNK_NONZEROS`` rows and about as many non-zeros."""
        crow = self.crow_indices
        row = 0
        while row < self.D:
            target = int(crow[row]) + WORK_CHUNK_NONZEROS
            key = torch.tensor(target, dtype=crow.dtype, device=crow.device)
            stop = int(torch.searchsorted(crow, key, right=True)) - 1
            stop = min(self.D, row + WORK_CHUNK_NONZEROS, max(row + 1, stop))
            yield row, stop
            row = stop

    @property
    def nnz(self) -> int:
        return self.values.numel()

    def config(self) -> dict:
        return {**super().config(), "density": self.density}


def _bernoulli_positions(length: int, p: float, g: torch.Generator) -> torch.Tensor:
    """Sorted indices i in [0, length) of independent Bernoulli(p) successes (int64)."""
    if p >= 1.0:
        return torch.arange(length)
    log_q = math.log1p(-p)
    found, last = [], -1
    while True:
        batch = int(p * (length - last) * 1.1) + 64
        u = torch.rand(batch, generator=g, dtype=torch.float64).clamp_min_(1e-300)
        gaps = torch.floor(torch.log(u) / log_q).long() + 1  # Geometric(p) on {1, 2, …}
        positions = last + gaps.cumsum(0)
        found.append(positions[positions < length])
        if positions[-1] >= length:
            return torch.cat(found)
        last = int(positions[-1])
