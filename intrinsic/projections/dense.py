"""Dense Gaussian projection, regenerated from the seed chunk by chunk (Li et al. 2018).

P has i.i.d. N(0, 1/N) entries (N per the normalisation, see ``base``), so columns have
expected squared norm 1 (per tensor or globally); for a segment of n entries the relative
deviation of a column slice's squared norm is about √(2/n). P is never stored: rows are cut
into chunks of ⌈2^22 / d⌉ rows, and chunk c is redrawn from its own stream (seed, c) in both
``matvec`` and ``rmatvec``. Memory is O(2^22) floats whatever D and d; time is O(D·d) per call,
so this is the reference projection for small models and tests, not for RoBERTa-large.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import seeding
from .base import Projection

CHUNK_ELEMENTS = 1 << 22


class DenseProjection(Projection):
    name = "dense"

    def __init__(
        self, d: int, segment_sizes: Sequence[int], seed: int = 0, normalization: str = "global"
    ):
        super().__init__(d, segment_sizes, seed, normalization)
        self.rows_per_chunk = max(1, CHUNK_ELEMENTS // d)
        offsets = torch.tensor([0, *self.segment_sizes]).cumsum(0)
        self._segment_ends = offsets[1:]
        self._segment_std = torch.tensor(
            [self.normalizer(i) ** -0.5 for i in range(len(self.segment_sizes))], dtype=torch.float64
        )
        # A device anchor so that .to(device) tells us where to compute.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def _chunks(self):
        for index, start in enumerate(range(0, self.D, self.rows_per_chunk)):
            yield index, start, min(start + self.rows_per_chunk, self.D)

    def chunk_matrix(self, index: int, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
        """Rows [start, stop) of P, shape (stop − start, d), redrawn from stream ``index``."""
        g = seeding.generator(self.seed, "dense", index)
        block = torch.randn(stop - start, self.d, generator=g, dtype=torch.float32)
        segment = torch.searchsorted(self._segment_ends, torch.arange(start, stop), right=True)
        block = block.to(dtype) * self._segment_std[segment].to(dtype)[:, None]
        return block.to(self._anchor.device)

    def matvec(self, theta_d: torch.Tensor) -> torch.Tensor:
        out = theta_d.new_empty(self.D)
        for index, start, stop in self._chunks():
            torch.mv(self.chunk_matrix(index, start, stop, theta_d.dtype), theta_d, out=out[start:stop])
        return out

    def rmatvec(self, grad: torch.Tensor) -> torch.Tensor:
        out = grad.new_zeros(self.d)
        for index, start, stop in self._chunks():
            out.addmv_(self.chunk_matrix(index, start, stop, grad.dtype).T, grad[start:stop])
        return out

    def config(self) -> dict:
        return {**super().config(), "rows_per_chunk": self.rows_per_chunk}
