"""``measure_d90``: the measurement's configuration and its orchestration.

The measurement for one (model, task):

1. full fine-tuning for each seed (cached): the reference metric ``full``;
2. the chance score: the majority training class (train mean for regression) on dev;
3. for each d tried: every learning rate in ``lrs`` × every seed (each run cached); the score of
   d is the mean over seeds at the best learning rate;
4. d90 (the paper's: score ≥ threshold × full) and the chance-corrected d90
   (score ≥ chance + threshold × (full − chance)), found by ``search.find_smallest_d`` or, with
   ``dims``, read off an explicit list.

Each run goes through a :class:`~intrinsic.runner.Runner` (store lookup, else training); the
result is a :class:`~intrinsic.results.D90Result`. Every field of :class:`MeasureConfig`
carries its default and help text in its metadata: the ``measure-did`` flags and the README's
defaults table are built from them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import ConfigError
from .projections import LAYOUTS, NORMALIZATIONS, PROJECTIONS
from .results import D90Result
from .runner import Runner, TrainFn
from .search import chance_corrected_target, find_smallest_d, paper_target, smallest_hit
from .store import DEFAULT_STORE, ResultStore, library_versions
from .tasks import TASKS, chance_scores, get_task


def setting(default=MISSING, *, help: str, default_factory=MISSING, flag: str | None = None, type=None,
            nargs: str | None = None, choices: tuple | None = None, shown: str | None = None):
    """A :class:`MeasureConfig` field, described once in its metadata.

    ``help``: what it means; ``flag``: the ``measure-did`` flag when not ``--`` + the name with
    dashes; ``type``, ``nargs``, ``choices``: as argparse takes them (``choices`` are also checked
    for Python callers); ``shown``: how a ``None`` default reads in help and tables ("D", "all").
    """
    metadata = {"help": help, "flag": flag, "type": type, "nargs": nargs, "choices": choices, "shown": shown}
    return field(default=default, default_factory=default_factory, metadata=metadata)


@dataclass
class MeasureConfig:
    """Everything that defines one d90 measurement; each field's metadata holds its help text."""

    model: str = setting(help="Hugging Face model ID (roberta-base), ID@revision, or local folder; "
                              "measure-did takes several and measures each in turn", nargs="+")
    task: str = setting(help=f"GLUE task: {', '.join(TASKS)}")
    data_dir: str | None = setting(None, help="folder in the layout of GLUE's download script",
                                   shown="the hub (nyu-mll/glue)")
    projection: str = setting("fastfood", help="the random projection P", choices=tuple(sorted(PROJECTIONS)))
    said: bool = setting(False, help="structure-aware mode: one learned scale per tensor, taken out of the budget d")
    layout: str = setting("stacked", help="Fastfood blocks: stacked over all parameters, or one per tensor",
                          choices=tuple(LAYOUTS))
    normalization: str = setting("global", help="scale of P: E[P²] = 1/D, or 1/n_i within each tensor of n_i entries",
                                 choices=tuple(sorted(NORMALIZATIONS)))
    dims: list[int] | None = setting(None, type=int, nargs="+", help="measure exactly these d instead of searching",
                                     shown="search")
    seeds: list[int] = setting(default_factory=lambda: [0], type=int, nargs="+",
                               help="seeds per d (projection, classifier head, training order); a d scores the "
                                    "mean over seeds")
    threshold: float = setting(0.9, type=float, help="fraction of full fine-tuning (or of its gain over chance) "
                                                     "to reach")
    lrs: list[float] = setting(default_factory=lambda: [1e-2, 3e-2, 1e-1], flag="--lr", type=float, nargs="+",
                               help="AdamW learning rates tried on θ_d at each d; the best mean over seeds counts")
    full_lr: float | list[float] = setting(2e-5, type=float, nargs="+",
                                           help="full fine-tuning learning rates; the best mean over seeds is the "
                                                "baseline")
    epochs: float = setting(3.0, type=float, help="epochs per run, full and subspace alike")
    batch_size: int = setting(32, type=int, help="examples per step (batches padded to their longest)")
    max_length: int = setting(128, type=int, help="tokens per example")
    max_train_samples: int | None = setting(None, type=int, help="use the first N training examples", shown="all")
    start_d: int = setting(128, type=int, help="first d of the search (doubled until a hit, then bisected)")
    max_d: int | None = setting(None, type=int, help="largest d the search tries", shown="D")
    resolution: float = setting(0.25, type=float, help="bisect until first hit / last miss ≤ 1 + resolution")
    device: str = setting("auto", help="cpu, cuda, cuda:1, …; auto: cuda if available")

    def __post_init__(self):
        for f in fields(self):
            choices = f.metadata["choices"]
            if choices is not None and getattr(self, f.name) not in choices:
                raise ConfigError(f.name, f"must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        if self.dims is not None and (not self.dims or any(int(d) <= 0 for d in self.dims)):
            raise ConfigError("dims", f"must be positive integers, got {self.dims}")
        if not self.seeds:
            raise ConfigError("seeds", "must hold at least one seed")
        if not 0 < self.threshold <= 1:
            raise ConfigError("threshold", f"must be in (0, 1], got {self.threshold}")
        for name, values in (("lrs", self.lrs), ("full_lr", self.full_lrs)):
            if not values or any(not lr > 0 for lr in values):
                raise ConfigError(name, f"must be positive learning rates, got {getattr(self, name)}")
        for name in ("epochs", "resolution"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be positive, got {getattr(self, name)}")
        for name in ("batch_size", "max_length", "start_d", "max_d", "max_train_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, f"must be at least 1, got {value}")
        get_task(self.task)  # an unknown task fails here, before any model is loaded

    @property
    def full_lrs(self) -> list[float]:
        return list(self.full_lr) if isinstance(self.full_lr, (list, tuple)) else [self.full_lr]


def measure_d90(config: MeasureConfig | None = None, *, results: str | Path = DEFAULT_STORE,
                progress: bool = True, train_fn: TrainFn | None = None, **options) -> D90Result:
    """Measure d90 for one model and task.

    ``config`` and/or ``options`` (:class:`MeasureConfig` fields; they override ``config``'s)
    define the measurement; ``results`` is the run store (JSONL), shared by reruns. ``train_fn``
    trains and evaluates one run, with the signature of
    :func:`~intrinsic.training.train_and_evaluate` (the default); its runs are stored apart.
    """
    config = MeasureConfig(**options) if config is None else replace(config, **options)
    runner = Runner(config, ResultStore(results), progress=progress, train_fn=train_fn)
    metric = runner.task.d90_metric
    full, full_lr = _baseline(runner, config, metric)
    chance = chance_scores(runner.task, runner.train, runner.dev)[metric]

    curve: dict[int, dict] = {}
    failed = [0]

    def score(d: int) -> float:
        if config.said and d <= runner.num_tensors:
            return float("-inf")  # SAID spends m of d on λ: d ≤ m cannot be trained, a miss
        if d not in curve:
            best = None
            for lr in config.lrs:
                values = []
                for seed in config.seeds:
                    result = runner.run(d, lr, seed)
                    if result["status"] == "ok":
                        values.append(result["metrics"][metric])
                    else:
                        failed[0] += 1
                if len(values) == len(config.seeds):
                    mean = statistics.mean(values)
                    if best is None or mean > best["mean"]:
                        std = statistics.stdev(values) if len(values) > 1 else 0.0
                        best = {"d": d, "mean": mean, "std": std, "n": len(values), "lr": lr}
            curve[d] = best or {"d": d, "mean": float("-inf"), "std": 0.0, "n": 0, "lr": None}
            curve[d]["bound"] = math.sqrt(d / len(runner.train))
        return curve[d]["mean"]

    target = paper_target(full, config.threshold)
    corrected = chance_corrected_target(full, chance, config.threshold)
    max_d = config.max_d or runner.D
    if config.dims:
        for d in sorted(set(config.dims)):
            score(d)
    else:
        start = min(config.start_d, max_d)
        if target > chance:
            find_smallest_d(score, target, start, max_d, config.resolution)
        if corrected > chance:
            find_smallest_d(score, corrected, start, max_d, config.resolution)
    # The searches chose what to measure; on a noisy curve the other search may have measured a
    # smaller d that reaches a target, and d90 is the smallest measured d that does.
    # A target at or below chance is reached by a constant predictor: d90 is then undefined.
    measured = {d: point["mean"] for d, point in curve.items()}
    d90 = None if target <= chance else smallest_hit(measured, target)
    d90c = None if corrected <= chance else smallest_hit(measured, corrected)
    notes = []
    if corrected <= chance:
        notes.append(f"full fine-tuning ({full:.4f}) does not beat chance ({chance:.4f}): no subspace has anything "
                     "to reach, so both d90s are undefined")
    elif target <= chance:
        notes.append(f"the paper's target {target:.4f} is at or below chance {chance:.4f}: predicting the "
                     "majority class reaches it, so d90 is undefined here; read the chance-corrected d90")

    return D90Result(
        model=config.model, task=runner.task.name, metric=metric, D=runner.D, d90=d90,
        d90_chance_corrected=d90c, threshold=config.threshold, full_metric=full, chance=chance,
        target=target, target_chance_corrected=corrected, train_examples=len(runner.train),
        curve=[curve[d] for d in sorted(curve)], failed_runs=failed[0],
        config=asdict(config), versions=library_versions(), notes=notes, model_info=runner.info,
        full_lr=full_lr,
    )


def _baseline(runner: Runner, config: MeasureConfig, metric: str) -> tuple[float, float]:
    """(full, lr): full fine-tuning at each of ``full_lrs`` × seeds; the best mean over seeds counts."""
    full, full_lr, errors = None, None, []
    for lr in config.full_lrs:
        runs = [runner.run(None, lr, seed) for seed in config.seeds]
        ok = [r["metrics"][metric] for r in runs if r["status"] == "ok"]
        errors += [r["error"] for r in runs if r["status"] != "ok"]
        if ok and (full is None or statistics.mean(ok) > full):
            full, full_lr = statistics.mean(ok), lr
    if full is None:
        raise RuntimeError(f"full fine-tuning failed for every seed and learning rate: {errors[0]}")
    return full, full_lr
