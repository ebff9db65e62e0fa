"""The Ray executor: each run is one Ray core task on a local or remote cluster.

A task receives the run's payload (:func:`~intrinsic.executors.worker.payload`), trains and
returns the result; the driver stores it. Ray retries a task whose worker process or node died
(``max_retries``, default :data:`MAX_RETRIES`); a run that still fails comes back as
:class:`~intrinsic.executors.base.Lost`, is reported and is not stored, so a rerun tries again.

Not Ray Tune: its trials, schedulers and experiment store do not fit a search whose score for
one d groups ``lrs × seeds`` runs, and the run store is already the record of what finished.
"""

from __future__ import annotations

import os
import socket

from ..errors import ConfigError
from ..runner import Runner, RunRequest
from .base import STOPPING_ERRORS, Finished, Lost
from .worker import execute_payload, payload

MAX_RETRIES = 2  # retries of a run whose worker process or node died


CONNECT_TIMEOUT = 5.0  # seconds to reach a cluster's address before giving up


class ClusterError(RuntimeError):
    """The Ray cluster cannot be reached or cannot serve the runs as asked."""


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise :class:`ClusterError` unless ``host:port`` (or ``ray://host:port``) accepts a TCP
    connection within ``timeout``: ``ray.init`` itself retries an unreachable address for minutes."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not host:port (or ray://host:port, auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}); check "
                           "--ray-address / RAY_ADDRESS, or start one there with `ray start --head`") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class RayExecutor:
    """Runs each submitted run as a Ray task with ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs.

    ``address``: the cluster to join (``RAY_ADDRESS`` when None; without either, Ray starts a local
    cluster on this machine). A process already connected to Ray (``ray.init`` called) is reused.
    ``exit_once`` is a test hook (see :func:`~intrinsic.executors.worker.payload`).
    """

    parallel = True

    def __init__(self, address: str | None = None, *, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                 max_retries: int = MAX_RETRIES, exit_once: str | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("executor", "'ray' needs Ray: pip install 'intrinsic[ray]' "
                                          "(from a clone: pip install -e '.[ray]')") from None
        self._ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            check_reachable(address)
        if not ray.is_initialized():
            if address is None:
                # Ray 2.60 refuses to start a local cluster without a token unless auth is disabled.
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
            except Exception as error:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError …
                where = f"at {address}" if address else "on this machine"
                raise ClusterError(f"cannot start or reach a Ray cluster {where} ({_first_line(error)}); "
                                   "check --ray-address / RAY_ADDRESS, or start one with `ray start --head`") from None
        resources = ray.cluster_resources()
        for name, flag, wanted in (("GPU", "gpus_per_run", gpus_per_run), ("CPU", "cpus_per_run", cpus_per_run)):
            have = resources.get(name, 0.0)
            if wanted > have:
                raise ConfigError(flag, f"asks for {wanted:g} {name}s per run, but the Ray cluster has {have:g} "
                                        f"in all; lower it or add nodes with {name}s")
        self.threads = max(1, int(cpus_per_run))
        self.exit_once = exit_once
        self._task = ray.remote(execute_payload).options(
            num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries, retry_exceptions=False)
        self._pending: set = set()

    def submit(self, runner: Runner, request: RunRequest):
        ref = self._task.remote(payload(runner, request, threads=self.threads, exit_once=self.exit_once))
        self._pending.add(ref)
        return ref

    def next_finished(self):
        """The next run to come back, as ``(handle, Finished | Lost)``; a run that raised one of
        :data:`~intrinsic.executors.base.STOPPING_ERRORS` re-raises it here."""
        ray = self._ray
        (ref,), _ = ray.wait(list(self._pending), num_returns=1)
        self._pending.discard(ref)
        try:
            record = ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, STOPPING_ERRORS):
                self.cancel()
                raise cause from None
            return ref, Lost(f"the run raised {type(cause).__name__ if cause else 'an error'}: "
                             f"{_first_line(cause or error)}")
        except ray.exceptions.RayError as error:  # the worker or its node died, retries spent
            return ref, Lost(f"its worker was lost ({type(error).__name__}: {_first_line(error)})")
        return ref, Finished(record["result"], {"worker": record["worker"]})

    def cancel(self) -> None:
        """Cancel every run still in flight (the driver stops)."""
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending.clear()
