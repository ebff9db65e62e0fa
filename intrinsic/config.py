"""``SubspaceConfig``: every choice that defines a subspace, recorded with every result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .projections import LAYOUTS, NORMALIZATIONS, PROJECTIONS


@dataclass
class SubspaceConfig:
    """How to reparameterise a model as θ = θ₀ + P θ_d.

    Attributes:
        d: the total trainable count (θ_d, plus the per-tensor scales λ in SAID mode).
        projection: "fastfood" (default), "dense" or "sparse".
        said: structure-aware mode: one learned scale λ_i per tensor, θ_i = θ₀,i + λ_i (P θ)_i,
            with the m scales taken out of the budget (θ_d then has d − m entries).
        seed: the one seed the projection's random state is regenerated from.
        normalization: "global" (default) or "per_tensor"; see ``intrinsic.projections.base``.
        layout: Fastfood block layout, "stacked" (default) or "per_tensor".
        block_size: Fastfood stacked block size L (power of two ≥ d); default 2^⌈log₂ d⌉.
        density: sparse projection density; default 1/√D.
    """

    d: int
    projection: str = "fastfood"
    said: bool = False
    seed: int = 0
    normalization: str = "global"
    layout: str = "stacked"
    block_size: int | None = None
    density: float | None = None

    def __post_init__(self):
        if isinstance(self.d, bool) or not isinstance(self.d, int) or self.d <= 0:
            raise ValueError(f"d must be a positive integer, got {self.d!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; choose one of {sorted(PROJECTIONS)}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}; choose one of {NORMALIZATIONS}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown Fastfood layout {self.layout!r}; choose one of {LAYOUTS}")
        if self.block_size is not None and self.projection != "fastfood":
            raise ValueError("block_size applies to projection='fastfood' only")
        if self.density is not None and self.projection != "sparse":
            raise ValueError("density applies to projection='sparse' only")

    def projection_options(self) -> dict:
        """Keyword arguments for the projection class, beyond d, segment sizes and seed."""
        options = {"normalization": self.normalization}
        if self.projection == "fastfood":
            options.update(layout=self.layout, block_size=self.block_size)
        if self.projection == "sparse":
            options.update(density=self.density)
        return options

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SubspaceConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown SubspaceConfig fields {sorted(unknown)}")
        return cls(**values)
