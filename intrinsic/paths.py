"""Where the real data and models of the development checkout live (tests, benchmarks, demo)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV_VAR = "INTRINSIC_SHARED_DIR"


def shared_dir() -> Path:
    """``$INTRINSIC_SHARED_DIR``, else ``../shared`` beside the project root."""
    override = os.environ.get(SHARED_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return (Path(__file__).resolve().parents[1].parent / "shared").resolve()


def shared_path(*parts: str) -> Path:
    """A path under :func:`shared_dir`, with an error that names the fix if it is missing."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; put the shared data folder beside the project "
            f"or point ${SHARED_ENV_VAR} at it"
        )
    return path
