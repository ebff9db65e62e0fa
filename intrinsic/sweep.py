"""d90 for several models or checkpoints with one configuration: one table, one JSON file.

    sweep = measure_models(["runs/mlm/m/step-0", "runs/mlm/m/step-6000"], MeasureConfig(model="", task="sst2"))
    print(sweep.table())
    sweep.save("figures/trajectory.json")

Every model runs through :func:`intrinsic.measure.measure_d90` against the same run store, so a
model whose full fine-tuning (the baseline) or subspace runs are already stored is not trained
again, and a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from .measure import D90Result, MeasureConfig, measure_d90
from .store import DEFAULT_STORE


@dataclass
class Sweep:
    """The d90 results of several models measured with one configuration, in the order given."""

    results: list[D90Result]

    def table(self) -> str:
        """One row per model: sizes, step, full and chance scores, both d90s, the bound's gap at d90."""
        header = (f"{'model':<28} {'params':>11} {'non-emb':>11} {'step':>7} {'full':>6} {'chance':>6} "
                  f"{'d90':>10} {'corrected':>10} {'gap@d90':>8}")
        lines = [header]
        for r in self.results:
            info = r.model_info
            bound = r.compression_bound()["d90_chance_corrected"]
            lines.append(
                f"{r.label[:28]:<28} {info.get('params', r.D):>11,} {_number(info.get('non_embedding_params')):>11} "
                f"{_number(info.get('step')):>7} {r.full_metric:>6.3f} {r.chance:>6.3f} "
                f"{r._describe(r.d90, r.target):>10} {r._describe(r.d90_chance_corrected, r.target_chance_corrected):>10} "
                f"{'-' if bound is None else format(bound['gap'], '.3f'):>8}")
        if self.results:
            r = self.results[0]
            lines.append(f"task {r.task}, dev {r.metric}; d90 at ≥ {r.threshold:g} × full, corrected at ≥ chance + "
                         f"{r.threshold:g}·(full − chance); gap@d90: compression-bound gap at the corrected d90 "
                         f"(16-bit θ_d, δ = 0.05, intrinsic.bounds)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"results": [r.to_dict() for r in self.results]}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Sweep":
        return cls(load_results(path))


def _number(value) -> str:
    return "-" if value is None else f"{value:,}"


def load_results(*paths: str | Path) -> list[D90Result]:
    """D90Results from JSON files written by ``measure-did --output``: one result or a sweep each."""
    out = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        items = data["results"] if isinstance(data, dict) and "results" in data else [data]
        out.extend(D90Result.from_dict(item) for item in items)
    return out


def measure_models(models: list[str], config: MeasureConfig, *, results: str | Path = DEFAULT_STORE,
                   progress: bool = True, on_result=None) -> Sweep:
    """Measure d90 for each of ``models`` with ``config`` (its ``model`` field is replaced).

    ``on_result(result)`` is called as each model finishes (the CLI prints its table there).
    """
    if not models:
        raise ValueError("give at least one model")
    if len(set(models)) != len(models):
        raise ValueError(f"a model is listed twice in {models}")
    out = []
    for model in models:
        try:
            result = measure_d90(replace(config, model=model), results=results, progress=progress)
        except OSError as error:
            error.model = model  # which of the models failed to load, for the CLI's message
            raise
        out.append(result)
        if on_result is not None:
            on_result(result)
    return Sweep(out)
