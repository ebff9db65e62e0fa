"""Messages shown once per distinct text in a process: ``warn_once`` (backend fallbacks) and
``note_once`` (a setting the library chose for the user, such as a decoder's pad token)."""

from __future__ import annotations

import functools
import sys
import warnings


@functools.cache
def warn_once(message: str) -> None:
    """Warn ``message`` (RuntimeWarning) the first time it is given; ``warn_once.cache_clear()``
    makes every message warn again."""
    warnings.warn(message, RuntimeWarning, stacklevel=3)


@functools.cache
def note_once(message: str) -> None:
    """Print ``note: message`` to stderr the first time it is given."""
    print(f"note: {message}", file=sys.stderr, flush=True)
