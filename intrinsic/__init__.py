"""intrinsic: measure the intrinsic dimension of fine-tuning pretrained language models."""

__version__ = "0.1.0"

from .config import SubspaceConfig  # noqa: E402
from .hadamard import hadamard_transform  # noqa: E402
from .projections import (  # noqa: E402
    DenseProjection,
    FastfoodProjection,
    SparseProjection,
    make_projection,
)
from .wrapper import SubspaceWrapper  # noqa: E402
from .measure import D90Result, MeasureConfig, measure_d90  # noqa: E402

__all__ = [
    "D90Result",
    "MeasureConfig",
    "DenseProjection",
    "FastfoodProjection",
    "SparseProjection",
    "SubspaceConfig",
    "SubspaceWrapper",
    "__version__",
    "hadamard_transform",
    "make_projection",
    "measure_d90",
]
