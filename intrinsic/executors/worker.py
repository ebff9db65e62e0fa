"""What a worker does with one run: rebuild the measurement's runner, check it trains what the
driver keyed, train, and return the result with the worker's facts. It never writes a store.

The payload (built by :func:`payload`) is everything that travels to a worker::

    {"config": MeasureConfig as a dict, "request": RunRequest fields, "run_config": the driver's key
     dict, "fingerprint": the driver's weights fingerprint, "train_fn": None or a function,
     "threads": torch threads}
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict

from ..models import ModelSpec
from ..runner import Runner, RunRequest
from ..store import config_key, library_versions
from ..training import train_and_evaluate
from .base import WorkerMismatchError

# A worker process serves many runs of a measurement: its data, tokenizer and projections load
# once. The few most recent measurements are kept (a frontier sends one per method).
_RUNNERS: dict[str, Runner] = {}
KEEP_RUNNERS = 4


def payload(runner: Runner, request: RunRequest, *, threads: int = 1, exit_once: str | None = None) -> dict:
    """The payload of one run of ``runner`` (see the module doc). ``exit_once`` is a test hook:
    the path of a marker file; the first worker to find it missing creates it and dies mid-run."""
    config = asdict(runner.config)
    # A worker may start in another folder: local paths travel absolute (runner.model_name is the
    # model's absolute folder, or its hub name), as the store's keys already hold them.
    local = ModelSpec.parse(runner.config.model).is_local
    config.update(model=runner.model_name if local else runner.config.model, data_dir=runner.data_dir)
    return {"config": config, "request": asdict(request), "run_config": runner.config_of(request),
            "fingerprint": runner.fingerprint,
            "train_fn": None if runner.train_fn is train_and_evaluate else runner.train_fn,
            "threads": threads, "exit_once": exit_once}


def execute_payload(payload: dict) -> dict:
    """Train the payload's run here: ``{"result": RunResult dict, "worker": {host, device, versions,
    seconds}}``. Raises :class:`WorkerMismatchError` when this machine would train something other
    than the driver's run (other weights under the model's path, or another run configuration)."""
    import torch

    from ..measure import MeasureConfig

    torch.set_num_threads(max(1, int(payload["threads"])))
    key = config_key({"config": payload["config"], "train_fn": repr(payload["train_fn"])})
    runner = _RUNNERS.get(key)
    if runner is None:
        config = MeasureConfig(**payload["config"])
        runner = Runner(config, None, progress=False, train_fn=payload["train_fn"])
        while len(_RUNNERS) >= KEEP_RUNNERS:
            _RUNNERS.pop(next(iter(_RUNNERS)))  # the oldest
    else:
        del _RUNNERS[key]  # re-inserted below: the order is the order of last use
    _RUNNERS[key] = runner
    request = RunRequest(**payload["request"])
    host = socket.gethostname()
    if runner.fingerprint != payload["fingerprint"]:
        raise WorkerMismatchError(
            f"{host} holds other weights under {runner.config.model} than the driver (fingerprint "
            f"{runner.fingerprint} ≠ {payload['fingerprint']}): put the same files at the same path on every node")
    if runner.config_of(request) != payload["run_config"]:
        raise WorkerMismatchError(f"{host} computes another run configuration than the driver for the same run: "
                                  "install the same intrinsic version on every node")
    marker = payload.get("exit_once")
    if marker is not None:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # atomic: one worker of all creates it
        except FileExistsError:
            pass
        else:
            os._exit(1)  # the test of a worker lost mid-run
    start = time.time()
    result = runner.execute(request, progress=False)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and runner.config.device != "cpu" else "cpu"
    return {"result": result, "worker": {"host": host, "device": device, "versions": library_versions(),
                                         "seconds": round(time.time() - start, 3)}}
