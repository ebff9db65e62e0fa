"""intrinsic: measure the intrinsic dimension of fine-tuning pretrained language models."""

__version__ = "0.1.0"

from .config import SubspaceConfig  # noqa: E402
from .errors import ConfigError, ModelLoadError  # noqa: E402
from .frontier import Frontier, measure_frontier  # noqa: E402
from .hadamard import hadamard_transform  # noqa: E402
from .measure import MeasureConfig, measure_d90  # noqa: E402
from .projections import (  # noqa: E402
    DenseProjection,
    FastfoodProjection,
    SparseProjection,
    make_projection,
)
from .results import D90Result, Sweep, load_results  # noqa: E402
from .sweep import measure_models  # noqa: E402
from .wrapper import SubspaceWrapper  # noqa: E402

__all__ = [
    "ConfigError",
    "D90Result",
    "DenseProjection",
    "FastfoodProjection",
    "Frontier",
    "MeasureConfig",
    "ModelLoadError",
    "SparseProjection",
    "SubspaceConfig",
    "SubspaceWrapper",
    "Sweep",
    "hadamard_transform",
    "load_results",
    "make_projection",
    "measure_d90",
    "measure_frontier",
    "measure_models",
    "__version__",
]
