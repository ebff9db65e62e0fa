"""Random projections θ_d ∈ R^d ↦ P θ_d ∈ R^D: dense, sparse and Fastfood."""

from .base import NORMALIZATIONS, Projection
from .dense import DenseProjection
from .fastfood import LAYOUTS, FastfoodProjection
from .sparse import SparseProjection

PROJECTIONS = {
    "dense": DenseProjection,
    "sparse": SparseProjection,
    "fastfood": FastfoodProjection,
}


def make_projection(name: str, d: int, segment_sizes, seed: int = 0, **options) -> Projection:
    """Build the projection called ``name`` ("dense", "sparse" or "fastfood")."""
    if name not in PROJECTIONS:
        raise ValueError(f"unknown projection {name!r}; choose one of {sorted(PROJECTIONS)}")
    return PROJECTIONS[name](d, segment_sizes, seed=seed, **options)


__all__ = [
    "LAYOUTS",
    "NORMALIZATIONS",
    "PROJECTIONS",
    "DenseProjection",
    "FastfoodProjection",
    "Projection",
    "SparseProjection",
    "make_projection",
]
