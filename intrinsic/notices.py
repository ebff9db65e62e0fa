"""``warn_once``: a warning shown once per distinct message in a process (backend fallbacks)."""

from __future__ import annotations

import functools
import warnings


@functools.cache
def warn_once(message: str) -> None:
    """Warn ``message`` (RuntimeWarning) the first time it is given; ``warn_once.cache_clear()``
    makes every message warn again."""
    warnings.warn(message, RuntimeWarning, stacklevel=3)
