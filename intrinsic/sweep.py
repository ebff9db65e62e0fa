"""d90 for several models or checkpoints with one configuration: one table, one JSON file.

    sweep = measure_models(["runs/mlm/m/step-0", "runs/mlm/m/step-6000"], MeasureConfig(model="", task="sst2"))
    print(sweep.table())
    sweep.save("runs/trajectory.json")

Every model is measured as :func:`intrinsic.measure.measure_d90` measures it, against the same
run store, so a model whose full fine-tuning (the baseline) or subspace runs are already stored is
not trained again, and a killed sweep resumes where it stopped. With ``executor="ray"`` the
models' measurements run at once, their runs spread over the cluster; serially they run in turn.
The result is a :class:`~intrinsic.results.Sweep`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .errors import ConfigError
from .executors import drive, make_executor
from .measure import MeasureConfig, widening_plan
from .results import D90Result, Sweep
from .runner import Runner, TrainFn
from .store import DEFAULT_STORE, ResultStore


def measure_models(models: list[str], config: MeasureConfig, *, results: str | Path = DEFAULT_STORE,
                   progress: bool = True, on_result: Callable[[D90Result], None] | None = None,
                   train_fn: TrainFn | None = None, widen: int = 0) -> Sweep:
    """Measure d90 for each of ``models`` with ``config`` (its ``model`` field is replaced).

    ``on_result(result)`` is called as each model finishes (the CLI prints its table there);
    ``results`` and ``train_fn`` are as for :func:`~intrinsic.measure.measure_d90`; ``widen``:
    a model every point of which chose one end of the learning-rate grid (points whose rates tied
    aside) is measured again with one more rate beyond it, up to ``widen`` times
    (:func:`~intrinsic.measure.widening_plan`). A model that cannot be loaded raises
    :class:`~intrinsic.errors.ModelLoadError`, which names it.
    """
    if not models:
        raise ConfigError("models", "must name at least one model")
    if len(set(models)) != len(models):
        raise ConfigError("models", f"lists a model twice: {models}")
    store = ResultStore(results)
    runners = [Runner(replace(config, model=model), store, progress=progress, train_fn=train_fn) for model in models]
    return Sweep(drive([(runner, widening_plan(runner, widen)) for runner in runners], make_executor(config),
                       progress=progress, on_result=on_result))
