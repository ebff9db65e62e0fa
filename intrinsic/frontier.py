"""``measure_frontier``: how many parameters each fine-tuning method needs to reach 90 %, beside d90.

For one (model, task), every method in ``methods`` is measured as
:func:`~intrinsic.measure.measure_d90` measures it (its plan of runs, on the executor the
configuration names: serially one method after another, on Ray all at once), with the same
configuration (data, epochs, seeds, selection rule, full fine-tuning baseline, targets) and one
head policy; only the knob searched and each method's learning-rate grid differ. Two references
are measured with the same seeds and printed beside the targets:

- ``head-only``: the head trained alone (a linear probe of the frozen model);
- ``untrained``: the model as loaded, with its seeded random head, not trained at all.

A method's *parameters-to-90 %* is its trainable count (and stored count) at the smallest knob
whose dev mean reaches the target, for both targets (the paper's and the chance-corrected one).
The result is a :class:`Frontier`; ``Frontier.table()`` sorts the methods by it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .errors import ConfigError
from .executors import drive, make_executor
from .measure import MeasureConfig, measure_d90, widening_plan
from .methods import METHOD_NAMES, get_method
from .results import KINDS, D90Result
from .runner import Runner, TrainFn
from .store import DEFAULT_STORE, ResultStore, library_versions

REFERENCE = "head-only"


@dataclass
class Frontier:
    """Every method's curve and parameters-to-90 % for one model and task, and the references.

    ``results`` holds one :class:`~intrinsic.results.D90Result` per method (in the order
    measured); they share ``full_metric``, ``chance`` and both targets. ``references`` maps
    ``"head-only"`` and ``"untrained"`` to ``{"mean", "std", "n", "scores", "lr", "trainable"}``.
    """

    results: list[D90Result]
    references: dict
    head: str
    versions: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def first(self) -> D90Result:
        return self.results[0]

    def at_target(self, result: D90Result, kind: str = "d90") -> dict | None:
        """The curve point at the method's d90 of ``kind`` (with its counts), or None if not reached."""
        d, status = result.outcome(kind)
        if status != "ok":
            return None
        return next(p for p in result.curve if p["d"] == d)

    def rows(self, kind: str = "d90") -> list[dict]:
        """One row per method, sorted by trainable parameters at the target (not reached: last)."""
        rows = []
        for r in self.results:
            point = self.at_target(r, kind)
            rows.append({"method": r.method, "knob": r.knob, "knob_at_90": None if point is None else point["knob"],
                         "trainable": None if point is None else point["trainable"],
                         "stored": None if point is None else point["stored"],
                         "head": None if point is None else point["head"],
                         "described": r.describe(kind), "interval": r.interval(kind), "status": r.status})
        return sorted(rows, key=lambda row: (row["trainable"] is None, row["trainable"] or 0))

    def table(self, kind: str = "d90") -> str:
        r = self.first
        target = r.target if kind == "d90" else r.target_chance_corrected
        lines = [f"{r.label} on {r.task}: full fine-tuning {r.full_metric:.4f}, chance {r.chance:.4f}, "
                 f"target {target:.4f} ({'paper' if kind == 'd90' else 'chance-corrected'}), head {self.head}"]
        for name, ref in self.references.items():
            lines.append(f"  {name:<10} {_mean_std(ref)}" + (f"  ({ref['trainable']:,} parameters)"
                                                               if ref.get("trainable") else ""))
        rows = self.rows(kind)
        knobs = []
        for row in rows:
            if row["trainable"] is None:
                knobs.append(row["described"] if row["knob"] is None else f"{row['knob']} {row['described']}")
            else:
                knobs.append("fixed size" if row["knob"] is None else f"{row['knob']} = {row['described']}")
        width = max([len("knob at 90 %"), *map(len, knobs)])
        lines.append(f"{'method':<14} {'knob at 90 %':>{width}} {'trainable':>11} {'stored':>11} "
                     f"{'interval (knob)':>18}")
        for row, knob in zip(rows, knobs, strict=True):
            lines.append(f"{row['method']:<14} {knob:>{width}} {_count(row['trainable']):>11} "
                         f"{_count(row['stored']):>11} {row['interval']:>18}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def to_dict(self) -> dict:
        return {"head": self.head, "references": self.references, "versions": self.versions, "notes": self.notes,
                "frontier": {kind: self.rows(kind) for kind in KINDS},
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> Frontier:
        return cls([D90Result.from_dict(r) for r in data["results"]], data["references"], data["head"],
                   data.get("versions", {}), data.get("notes", []))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Frontier:
        return cls.from_dict(json.loads(Path(path).read_text()))


def measure_frontier(methods: list[str], config: MeasureConfig, *, head: str = "frozen",
                     lrs: dict[str, list[float]] | None = None, max_knobs: dict[str, int] | None = None,
                     results: str | Path = DEFAULT_STORE,
                     progress: bool = True, on_result: Callable[[D90Result], None] | None = None,
                     train_fn: TrainFn | None = None, widen: int = 0) -> Frontier:
    """Measure every method of ``methods`` on ``config``'s model and task under one ``head`` policy.

    ``lrs`` overrides a method's learning-rate grid ({"lora": [1e-4, 1e-3]}); otherwise each
    method uses its own default grid (``config.lrs`` is ignored: one grid cannot suit methods whose
    good rates differ by orders of magnitude). ``max_knobs`` caps a method's search ({"pafi":
    65536}: a method that never reaches the target otherwise doubles up to its model's limit).
    ``config``'s ``start_d``/``max_d`` apply to DID and SAID only. ``results`` (the run store),
    ``progress`` and ``train_fn`` are as for :func:`~intrinsic.measure.measure_d90`; ``on_result``
    is called as each method finishes.

    ``widen``: a method every point of which chose one end of its learning-rate grid (points
    whose rates tied aside: :func:`~intrinsic.measure.grid_edge`) is measured again with one more
    rate beyond that end (:func:`~intrinsic.measure.widened_grid`), up to ``widen`` times; every
    method gets the same rule, and the rates are still chosen on the selection split. Stored runs
    of the narrower grid are reused.
    """
    if not methods:
        raise ConfigError("methods", "must name at least one method")
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise ConfigError("methods", f"has unknown {', '.join(map(repr, unknown))}; choose from "
                                     f"{', '.join(METHOD_NAMES)}")
    if len(set(methods)) != len(methods):
        raise ConfigError("methods", f"lists a method twice: {methods}")
    lrs, max_knobs = lrs or {}, max_knobs or {}
    for method in methods:
        get_method(method).check(None, head)  # a head policy a method refuses fails before any run
    store = ResultStore(results)
    runners = []
    for method in methods:
        subspace = method in ("did", "said")
        measured = replace(config, method=method, said=method == "said", head=head, lrs=lrs.get(method),
                           start_d=config.start_d if subspace else None,
                           max_d=max_knobs.get(method, config.max_d if subspace else None),
                           dims=config.dims if subspace else None)
        runners.append(Runner(measured, store, progress=progress, train_fn=train_fn))
    # Serially each method is measured (and widened) in turn; on Ray every method's runs are in flight at once.
    out = drive([(runner, widening_plan(runner, widen)) for runner in runners], make_executor(config),
                progress=progress, on_result=on_result)
    reference_config = replace(config, method=REFERENCE, said=False, head="train", lrs=lrs.get(REFERENCE),
                               start_d=None, max_d=None, dims=None)
    head_only = measure_d90(reference_config, results=results, progress=progress, train_fn=train_fn)
    point = head_only.curve[0]
    references = {REFERENCE: {k: point[k] for k in ("mean", "std", "n", "scores", "lr", "trainable")},
                  "untrained": untrained_scores(reference_config, results)}
    notes = []
    for kind, target in (("d90", out[0].target), ("corrected", out[0].target_chance_corrected)):
        if target > out[0].chance and point["mean"] >= target:
            notes.append(f"the head alone ({point['trainable']:,} parameters) reaches the "
                         f"{'paper' if kind == 'd90' else 'chance-corrected'} target: under head='train' every "
                         "method reaches it at its smallest setting")
    return Frontier(out, references, head, library_versions(), notes)


@torch.no_grad()
def untrained_scores(config: MeasureConfig, results: str | Path = DEFAULT_STORE) -> dict:
    """Dev metric of the model as loaded (its head random from each seed), per seed: nothing trained."""
    from .training import TrainConfig, evaluate, pick_device, tokenize

    runner = Runner(config, ResultStore(results), progress=False)
    metric = runner.task.d90_metric
    device = pick_device(config.device)
    scores = []
    for seed in config.seeds:
        model = runner.load_model(seed).to(device)
        features = tokenize(runner.tokenizer, runner.dev, config.max_length)
        evaluation = TrainConfig(lr=1.0, max_length=config.max_length, seed=seed)  # only eval_batch_size is read
        scores.append(evaluate(model, runner.task, runner.tokenizer, features, runner.dev.labels, evaluation,
                               device)[metric])
    return {"mean": statistics.mean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "n": len(scores), "scores": scores, "lr": None, "trainable": 0}


def _mean_std(ref: dict) -> str:
    return f"{ref['mean']:.4f} ± {ref['std']:.4f} (n = {ref['n']})"


def _count(value) -> str:
    return "-" if value is None else f"{value:,}"


__all__ = ["Frontier", "measure_frontier", "untrained_scores"]
