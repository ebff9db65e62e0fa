"""What an executor returns for a run, and the errors that stop a measurement instead of failing one run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError, ModelLoadError


@dataclass
class Finished:
    """A run that came back: its result dict (``RunResult.to_dict()``, ``status`` "ok" or "failed")
    and ``extra`` fields for its store record (the worker's host, device and library versions)."""

    result: dict
    extra: dict = field(default_factory=dict)


@dataclass
class Lost:
    """A run whose worker died (after the executor's retries) or raised: reported, never stored."""

    error: str


class WorkerMismatchError(RuntimeError):
    """A worker would train something other than what the driver keyed: another model under the
    same folder path, or another run configuration (another ``intrinsic`` version)."""


# Raised in a worker, these are the user's to fix and stop the measurement; anything else fails one run.
STOPPING_ERRORS = (ConfigError, ModelLoadError, WorkerMismatchError, FileNotFoundError, PermissionError, ImportError)
