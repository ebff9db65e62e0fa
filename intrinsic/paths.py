"""Where the local data folder lives: real models and GLUE data for the demo, tests and scripts.

Only ``intrinsic.demo`` imports this module from the library; everything else takes explicit
paths or hub IDs. The folder's layout is that of the development checkout's ``../shared``
(``models/<name>/`` Hugging Face folders, ``data/glue/<TASK>/`` in GLUE's download layout).
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV_VAR = "INTRINSIC_SHARED_DIR"


def shared_dir() -> Path:
    """``$INTRINSIC_SHARED_DIR``; else ``../shared`` beside the project root when this package runs
    from a source checkout (a ``pyproject.toml`` next to the package folder); else ``../shared``
    from the working directory. The folder need not exist."""
    override = os.environ.get(SHARED_ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file():
        return (root.parent / "shared").resolve()
    return (Path.cwd().parent / "shared").resolve()


def shared_path(*parts: str) -> Path:
    """A path under :func:`shared_dir`, with an error that names the fix if it is missing."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; put the shared data folder beside the project "
            f"or point ${SHARED_ENV_VAR} at it"
        )
    return path
