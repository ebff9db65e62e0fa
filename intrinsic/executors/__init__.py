"""Executors: where the runs of a measurement train, and the driver that feeds them.

- ``serial`` (:class:`SerialExecutor`, the default): one run after another in this process;
- ``ray`` (:class:`~intrinsic.executors.ray_cluster.RayExecutor`): each run a Ray task on a
  local or remote cluster (the ``ray`` extra; imported only when chosen).

:func:`drive` runs measurement plans on either and is the only writer of the run store.
"""

from __future__ import annotations

from .base import Finished, Lost, WorkerMismatchError
from .driver import drive
from .names import EXECUTORS
from .serial import SerialExecutor

__all__ = ["EXECUTORS", "Finished", "Lost", "SerialExecutor", "WorkerMismatchError", "drive", "make_executor"]

_RAY_EXECUTORS: dict = {}  # one per (address, resources) in a process: Ray connects once


def make_executor(config):
    """The executor ``config.executor`` names, with its Ray settings (a MeasureConfig)."""
    if config.executor == "serial":
        return SerialExecutor()
    from .ray_cluster import RayExecutor

    key = (config.ray_address, config.cpus_per_run, config.gpus_per_run)
    if key not in _RAY_EXECUTORS:
        _RAY_EXECUTORS[key] = RayExecutor(config.ray_address, cpus_per_run=config.cpus_per_run,
                                          gpus_per_run=config.gpus_per_run)
    return _RAY_EXECUTORS[key]
