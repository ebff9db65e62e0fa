"""d90 for several models or checkpoints with one configuration: one table, one JSON file.

    sweep = measure_models(["runs/mlm/m/step-0", "runs/mlm/m/step-6000"], MeasureConfig(model="", task="sst2"))
    print(sweep.table())
    sweep.save("runs/trajectory.json")

Every model runs through :func:`intrinsic.measure.measure_d90` against the same run store, so a
model whose full fine-tuning (the baseline) or subspace runs are already stored is not trained
again, and a killed sweep resumes where it stopped. The result is a :class:`~intrinsic.results.Sweep`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .errors import ConfigError
from .measure import MeasureConfig, measure_d90
from .results import D90Result, Sweep
from .runner import TrainFn
from .store import DEFAULT_STORE


def measure_models(models: list[str], config: MeasureConfig, *, results: str | Path = DEFAULT_STORE,
                   progress: bool = True, on_result: Callable[[D90Result], None] | None = None,
                   train_fn: TrainFn | None = None) -> Sweep:
    """Measure d90 for each of ``models`` with ``config`` (its ``model`` field is replaced).

    ``on_result(result)`` is called as each model finishes (the CLI prints its table there);
    ``results`` and ``train_fn`` are passed to :func:`~intrinsic.measure.measure_d90`. A model
    that cannot be loaded raises :class:`~intrinsic.errors.ModelLoadError`, which names it.
    """
    if not models:
        raise ConfigError("models", "must name at least one model")
    if len(set(models)) != len(models):
        raise ConfigError("models", f"lists a model twice: {models}")
    out = []
    for model in models:
        result = measure_d90(replace(config, model=model), results=results, progress=progress, train_fn=train_fn)
        out.append(result)
        if on_result is not None:
            on_result(result)
    return Sweep(out)
