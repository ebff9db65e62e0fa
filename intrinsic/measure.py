"""``measure_d90``: the measurement's configuration and its orchestration.

The measurement for one (model, task):

1. full fine-tuning at each of ``full_lr`` × every seed (cached); the learning rate whose mean
   over seeds is best on the *selection split* is chosen, and its mean dev metric is ``full``;
2. the chance score: the majority training class (train mean for regression) on dev;
3. for each d tried: every learning rate in ``lrs`` × every seed (each run cached); the learning
   rate with the best mean on the selection split is chosen, and the score of d is the mean dev
   metric at it (with its standard deviation, count and per-seed values);
4. d90 (the paper's: score ≥ threshold × full) and the chance-corrected d90
   (score ≥ chance + threshold × (full − chance)), found by the two searches stepping together
   (``search.searches_together``) or, with ``dims``, read off an explicit list; beside each, the
   per-seed d90s, an interval from resampling seeds, the d where a monotone fit of the curve
   reaches the target, and a flag when the d90 clears its target by less than one standard error
   (``intrinsic.statistics``);
5. a model none of whose subspace runs trained (none beat chance by :data:`TRAINED_MARGIN` or
   lowered its training loss below :data:`LOSS_DROP` × its first value), not even at a wider
   learning-rate grid (one decade beyond each end of ``lrs``, at the largest d tried), is
   reported as *not trainable with these settings*, not as a d90.

The selection split is a validation set held out of the training file (``selection="validation"``,
the default; ``runner.load_splits``), so dev, which reports every number, was not tuned on; with
``selection="dev"`` the learning rates are chosen on dev itself, which flatters the result.

The measurement is a plan (:func:`d90_plan`) that yields the runs each step needs; the driver
(:mod:`intrinsic.executors`) reads each from the store through a :class:`~intrinsic.runner.Runner`,
else has the executor (``serial`` here, or ``ray``) train it, and stores it. The result is a
:class:`~intrinsic.results.D90Result`. Every field of :class:`MeasureConfig`
carries its default and help text in its metadata: the ``measure-did`` flags and the README's
defaults table are built from them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Generator
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from . import statistics as stats
from .errors import ConfigError
from .executors.names import EXECUTORS
from .methods import HEAD_POLICIES, get_method
from .projections import LAYOUTS, NORMALIZATIONS, PROJECTIONS
from .results import D90Result
from .runner import Runner, RunRequest, TrainFn
from .search import chance_corrected_target, paper_target, searches_together, smallest_hit
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
    method: str | None = setting(None, help="method whose size knob is searched: did, said, lora, … "
                                            "(docs/frontier.md)",
                                 shown="did (said with --said)")
    head: str | None = setting(None, choices=HEAD_POLICIES,
                               help="the head: frozen at its random start, trained, or projected (did, said)",
                               shown="projected for did/said, else frozen")
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
    lrs: list[float] | None = setting(None, flag="--lr", type=float, nargs="+",
                                      help="AdamW learning rates tried at each knob; the best on the selection "
                                           "split counts",
                                      shown="the method's: 1e-2 3e-2 1e-1 for did/said")
    full_lr: float | list[float] = setting(2e-5, type=float, nargs="+",
                                           help="full fine-tuning learning rates; the best on the selection split "
                                                "is the baseline")
    selection: str = setting("validation", choices=("validation", "dev"),
                             help="where learning rates are chosen: a split held out of the training file (dev "
                                  "only reports), or dev itself (optimistic)")
    validation_size: int = setting(500, type=int,
                                   help="examples held out of the training file for selection (fixed seed; at most a "
                                        "fifth of it)")
    epochs: float = setting(3.0, type=float, help="epochs per run, full and subspace alike")
    batch_size: int = setting(32, type=int, help="examples per step (batches padded to their longest)")
    max_length: int = setting(128, type=int, help="tokens per example")
    max_train_samples: int | None = setting(None, type=int, help="use the first N training examples", shown="all")
    start_d: int | None = setting(None, type=int, help="first knob of the search (doubled until a hit, then bisected)",
                                  shown="128 for d, else the method's")
    max_d: int | None = setting(None, type=int, help="largest knob the search tries",
                                shown="D for d, else the model's limit or 4,096")
    resolution: float = setting(0.25, type=float, help="bisect until first hit / last miss ≤ 1 + resolution")
    device: str = setting("auto", help="cpu, cuda, cuda:1, …; auto: cuda if available")
    executor: str = setting("serial", choices=EXECUTORS,
                            help="where runs train: one after another here, or as Ray tasks over a cluster "
                                 "(the ray extra)")
    ray_address: str | None = setting(None, help="Ray cluster to join (also RAY_ADDRESS)",
                                      shown="a local cluster on this machine")
    cpus_per_run: float = setting(1.0, type=float, help="CPU cores per Ray task (torch threads)")
    gpus_per_run: float = setting(0.0, type=float, help="GPUs per Ray task")

    def __post_init__(self):
        method = get_method(self.method_name)  # an unknown method fails here, naming the known ones
        if self.said and self.method not in (None, "said"):
            raise ConfigError("said", f"selects the method said; it cannot be combined with method {self.method!r}")
        method.check(None, self.head_policy)
        for f in fields(self):
            choices = f.metadata["choices"]
            value = getattr(self, f.name)
            if choices is not None and value not in choices and not (value is None and f.default is None):
                raise ConfigError(f.name, f"must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        if self.dims is not None and (not self.dims or any(int(d) <= 0 for d in self.dims)):
            raise ConfigError("dims", f"must be positive integers, got {self.dims}")
        if not self.seeds:
            raise ConfigError("seeds", "must hold at least one seed")
        if not 0 < self.threshold <= 1:
            raise ConfigError("threshold", f"must be in (0, 1], got {self.threshold}")
        for name, values in (("lrs", self.learning_rates), ("full_lr", self.full_lrs)):
            if not values or any(not lr > 0 for lr in values):
                raise ConfigError(name, f"must be positive learning rates, got {getattr(self, name)}")
        if self.executor != "ray" and (self.ray_address is not None or self.gpus_per_run or self.cpus_per_run != 1):
            raise ConfigError("executor", "must be 'ray' for ray_address, cpus_per_run and gpus_per_run to apply")
        if not self.cpus_per_run > 0 or self.gpus_per_run < 0:
            raise ConfigError("cpus_per_run" if not self.cpus_per_run > 0 else "gpus_per_run",
                              "must be positive (cpus_per_run) or at least 0 (gpus_per_run)")
        for name in ("epochs", "resolution"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be positive, got {getattr(self, name)}")
        for name in ("batch_size", "max_length", "start_d", "max_d", "max_train_samples", "validation_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, f"must be at least 1, got {value}")
        get_task(self.task)  # an unknown task fails here, before any model is loaded

    @property
    def method_name(self) -> str:
        """``method``, or did (said with ``said=True``) when it is None."""
        return self.method or ("said" if self.said else "did")

    @property
    def head_policy(self) -> str:
        """``head``, or the method's default: projected for did and said (the paper's), else frozen."""
        return self.head or ("projected" if self.method_name in ("did", "said") else "frozen")

    @property
    def learning_rates(self) -> list[float]:
        """``lrs``, or the method's default grid."""
        return list(self.lrs) if self.lrs is not None else list(get_method(self.method_name).default_lrs)

    @property
    def full_lrs(self) -> list[float]:
        return list(self.full_lr) if isinstance(self.full_lr, (list, tuple)) else [self.full_lr]


TRAINED_MARGIN = 0.02  # a run beating chance by this much (absolute, in the task's d90 metric) trained
LOSS_DROP = 0.9  # a run whose final training loss is below this × its first trained
WIDER_GRID_FACTOR = 10.0  # the grid tried before "not trainable": lrs plus min/10 and max·10


def measure_d90(config: MeasureConfig | None = None, *, results: str | Path = DEFAULT_STORE,
                progress: bool = True, train_fn: TrainFn | None = None, **options) -> D90Result:
    """Measure d90 for one model and task (see the module doc for what is measured).

    ``config`` and/or ``options`` (:class:`MeasureConfig` fields; they override ``config``'s)
    define the measurement; ``results`` is the run store (JSONL), shared by reruns. ``train_fn``
    trains and evaluates one run, with the signature of
    :func:`~intrinsic.training.train_and_evaluate` (the default); its runs are stored apart.
    The runs go to the executor ``config.executor`` names (:mod:`intrinsic.executors`).
    """
    from .executors import drive, make_executor

    config = MeasureConfig(**options) if config is None else replace(config, **options)
    runner = Runner(config, ResultStore(results), progress=progress, train_fn=train_fn)
    executor = make_executor(config)
    return drive([(runner, d90_plan(runner))], executor, progress=progress)[0]


# A measurement as a generator: it yields the runs it needs next (a list of RunRequest, run in
# any order, in parallel if the executor can) and is sent their results in the same order.
Plan = Generator[list[RunRequest], list[dict], D90Result]


def d90_plan(runner: Runner, lrs: list[float] | None = None) -> Plan:
    """The measurement of ``runner.config`` as a :data:`Plan`; it returns the :class:`D90Result`.
    ``lrs`` replaces the configuration's learning-rate grid (a run's store key does not depend on
    the grid, so one runner serves a measurement and its re-measurement with a wider grid).

    Rounds: full fine-tuning (every lr × seed), then each round of the searches for both targets
    at once (every lr × seed of each d they ask for), then, for a curve with no d90, the wider
    learning-rate grid. What it yields depends only on the results it is sent, so the answer is
    the same whatever runs the runs, and however many at a time."""
    config = runner.config if lrs is None else replace(runner.config, lrs=list(lrs))
    metric = runner.task.d90_metric
    choose = _Chooser(metric, config.selection)
    lost = [0]  # runs the executor lost: failed here, not stored

    def ask(requests: list[RunRequest]) -> Generator[list[RunRequest], list[dict], dict]:
        runs = yield requests
        lost[0] += sum(bool(run.get("lost")) for run in runs)
        return dict(zip(requests, runs, strict=True))

    full_requests = [RunRequest(True, None, lr, seed) for lr in config.full_lrs for seed in config.seeds]
    full_runs = yield from ask(full_requests)
    full_point = choose.best([(lr, [full_runs[RunRequest(True, None, lr, seed)] for seed in config.seeds])
                              for lr in config.full_lrs])
    if full_point is None:
        errors = [run.get("error") for run in full_runs.values()]
        raise RuntimeError(f"full fine-tuning failed for every seed and learning rate: {errors[0]}")
    full = full_point["mean"]
    chance = chance_scores(runner.task, runner.train, runner.dev)[metric]

    curve: dict[int, dict] = {}
    subspace_runs: list[dict] = []
    failed = [0]

    method = runner.method
    low, max_d = runner.knob_limits() if method.knob is not None else (None, None)

    def point_d(knob: int | None) -> int:
        """A point's ``d``: the knob, or the trainable count for a method of fixed size."""
        return runner.counts(knob)["trainable"] if knob is None else knob

    def measure(knobs) -> Plan:
        """Every lr × seed run of the ``knobs`` not measured yet, in one round; their points go to ``curve``."""
        todo = [knob for knob in dict.fromkeys(knobs)
                if (knob is None or knob >= low) and point_d(knob) not in curve]
        requests = [RunRequest(False, knob, lr, seed) for knob in todo
                    for lr in config.learning_rates for seed in config.seeds]
        if not requests:
            return
        runs = yield from ask(requests)
        for knob in todo:
            by_lr = [(lr, [runs[RunRequest(False, knob, lr, seed)] for seed in config.seeds])
                     for lr in config.learning_rates]
            for _, lr_runs in by_lr:
                subspace_runs.extend(lr_runs)
                failed[0] += sum(r["status"] != "ok" for r in lr_runs)
            point = choose.best(by_lr) or {"mean": float("-inf"), "std": 0.0, "n": 0, "lr": None,
                                           "selection_mean": None, "scores": [None] * len(config.seeds)}
            d = point_d(knob)
            curve[d] = {"d": d, "knob": knob, **point, "bound": math.sqrt(d / len(runner.train)),
                        **runner.counts(knob)}

    def score(knob: int) -> float:
        # SAID spends m of d on λ: d ≤ m cannot be trained, a miss
        return float("-inf") if knob < low else curve[point_d(knob)]["mean"]

    target = paper_target(full, config.threshold)
    corrected = chance_corrected_target(full, chance, config.threshold)
    if method.knob is None:  # a method of fixed size: one point
        yield from measure([None])
    elif config.dims:
        yield from measure(sorted(set(config.dims)))
    else:
        # Both targets' searches step together: each round measures every d either asks for.
        start = min(config.start_d or method.knob.first, max_d)
        rounds = searches_together([t for t in (target, corrected) if t > chance], start, max_d, config.resolution)
        try:
            knobs = next(rounds)
            while True:
                yield from measure(knobs)
                knobs = rounds.send(score)
        except StopIteration:
            pass
    # The searches chose what to measure; on a noisy curve the other search may have measured a
    # smaller d that reaches a target, and d90 is the smallest measured d that does.
    # A target at or below chance is reached by a constant predictor: d90 is then undefined.
    measured = {d: point["mean"] for d, point in curve.items()}
    d90 = None if target <= chance else smallest_hit(measured, target)
    d90c = None if corrected <= chance else smallest_hit(measured, corrected)
    notes = []
    if config.selection == "dev":
        notes.append("learning rates were chosen on dev, the split every number here is measured on: "
                     "optimistic (selection 'validation' holds a split out of the training data instead)")
    if corrected <= chance:
        notes.append(f"full fine-tuning ({full:.4f}) does not beat chance ({chance:.4f}): no subspace has anything "
                     "to reach, so both d90s are undefined")
    elif target <= chance:
        notes.append(f"the paper's target {target:.4f} is at or below chance {chance:.4f}: predicting the "
                     "majority class reaches it, so d90 is undefined here; read the chance-corrected d90")

    points = [curve[d] for d in sorted(curve)]
    smallest = method.knob.low if method.knob is not None else None
    if points and points[0]["knob"] == smallest and points[0]["mean"] >= min(target, corrected):
        setting = "its only setting" if smallest is None else f"its smallest setting ({method.knob.name} = {smallest})"
        notes.append(f"{method.name} reaches a target at {setting}: its parameters-to-90 % is at most "
                     f"{points[0]['trainable']:,}, not a measured threshold")
    edge = grid_edge_note(points, config.learning_rates)
    if edge is not None:
        notes.append(edge)
    status = "measured"
    if points and d90 is None and d90c is None and corrected > chance:
        status = yield from _trainability(config, points, subspace_runs, chance, metric, notes, ask)
    uncertainty = {kind: curve_uncertainty(points, config.seeds, config.resolution, d, t, notes, kind)
                   for kind, d, t in (("d90", d90, target), ("corrected", d90c, corrected)) if t > chance}
    if lost[0]:
        notes.append(f"{lost[0]} run(s) were lost with their workers and count as failed; they are not stored, "
                     "so a rerun trains them")

    return D90Result(
        model=config.model, task=runner.task.name, metric=metric, D=runner.D, d90=d90,
        d90_chance_corrected=d90c, threshold=config.threshold, full_metric=full, chance=chance,
        target=target, target_chance_corrected=corrected, train_examples=len(runner.train),
        curve=points, failed_runs=failed[0],
        config=asdict(config), versions=library_versions(), notes=notes, model_info=runner.info,
        full_lr=full_point["lr"], selection=config.selection,
        validation_examples=None if runner.validation is None else len(runner.validation),
        full_selection_metric=full_point["selection_mean"], full_scores=full_point["scores"],
        uncertainty=uncertainty, status=status, method=method.name,
        knob=None if method.knob is None else method.knob.name, head=runner.head,
    )


class _Chooser:
    """Picks the learning rate of a d (or of full fine-tuning) on the selection split."""

    def __init__(self, metric: str, selection: str):
        self.metric = metric
        self.key = "validation_metrics" if selection == "validation" else "metrics"

    def best(self, by_lr: list[tuple[float, list[dict]]]) -> dict | None:
        """The point of the learning rate whose runs (all seeds ok) have the best mean on the
        selection split: ``{"mean", "std", "n", "lr", "selection_mean", "scores", "tied"}`` with
        mean, std and the per-seed ``scores`` on dev, and ``tied`` true when another rate had the
        same selection mean (the first such rate is kept; typically every rate predicts one class);
        None if no learning rate had every seed succeed."""
        best = None
        for lr, runs in by_lr:
            if not runs or any(r["status"] != "ok" for r in runs):
                continue
            chosen_on = statistics.mean(r[self.key][self.metric] for r in runs)
            if best is not None and math.isclose(chosen_on, best["selection_mean"], rel_tol=1e-12, abs_tol=1e-12):
                best["tied"] = True
            elif best is None or chosen_on > best["selection_mean"]:
                scores = [r["metrics"][self.metric] for r in runs]
                best = {"mean": statistics.mean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                        "n": len(scores), "lr": lr, "selection_mean": chosen_on, "scores": scores, "tied": False}
        return best


def widening_plan(runner: Runner, widen: int) -> Plan:
    """:func:`~intrinsic.measure.d90_plan`, then, while every point whose rates did not tie chose
    one end of the grid (:func:`grid_edge`; up to ``widen`` times), the same measurement with one
    more rate beyond that end; the result of the last, with a note for each widening."""
    grid = runner.config.learning_rates
    result = yield from d90_plan(runner)
    notes = []
    for _ in range(widen):
        edge = grid_edge(result.curve, grid)
        if edge is None:
            break
        wider = widened_grid(grid, edge)
        notes.append(f"every point whose rates did not tie chose the {edge} of the grid {grid_text(grid)}: "
                     f"measured again with {grid_text(wider)}")
        grid = wider
        result = yield from d90_plan(runner, lrs=grid)
    result.notes[:0] = notes
    return result


def grid_text(grid: list[float]) -> str:
    """A learning-rate grid as notes show it: "0.0001, 0.001"."""
    return ", ".join(f"{x:g}" for x in grid)


def grid_edge(points: list[dict], grid: list[float]) -> str | None:
    """"top" or "bottom" when every measured point whose rate won outright chose that end of a
    learning-rate grid of two or more rates (the best rate may lie beyond it), else None. A point
    whose rates tied (``tied``: they all predict one class, say) says nothing about where the best
    rate lies, so it neither triggers nor blocks a widening."""
    chosen = {p["lr"] for p in points if p["n"] > 0 and not p.get("tied", False)}
    if len(grid) < 2 or len(chosen) != 1:
        return None
    lr = chosen.pop()
    return "top" if lr == max(grid) else "bottom" if lr == min(grid) else None


def widened_grid(grid: list[float], edge: str) -> list[float]:
    """``grid`` with one more rate beyond its ``edge`` end, at the grid's own spacing there
    (the ratio of its two outermost rates at that end)."""
    rates = sorted(grid)
    if edge == "top":
        return [*rates, typed_rate(rates[-1] * rates[-1] / rates[-2])]
    return [typed_rate(rates[0] * rates[0] / rates[1]), *rates]


def typed_rate(lr: float) -> float:
    """A computed learning rate rounded to 12 significant digits: 1e-3 · 1e-3 / 1e-4 and 3e-3 / 10
    become the 0.01 and 0.0003 a user would type, so they share that rate's store key."""
    return float(f"{lr:.12g}")


def grid_edge_note(points: list[dict], grid: list[float]) -> str | None:
    """A note when every measured point whose rates did not tie chose the same end of a
    learning-rate grid of two or more rates (:func:`grid_edge`): the best rate may lie beyond it,
    and the curve is then a lower bound."""
    edge = grid_edge(points, grid)
    if edge is None:
        return None
    lr = max(grid) if edge == "top" else min(grid)
    return (f"every point whose rates did not tie chose lr {lr:g}, the {edge} of the grid {grid_text(grid)}: "
            "a rate beyond it may score higher, so the curve may be low; widen the grid")


def _trained(run: dict, chance: float, metric: str) -> bool:
    """A run trained: it beat chance by TRAINED_MARGIN, or its loss fell below LOSS_DROP × its first
    (a run that does not record its first loss counts as trained: nothing shows it did not)."""
    if run["status"] != "ok":
        return False
    if run["metrics"][metric] >= chance + TRAINED_MARGIN:
        return True
    first, last = run.get("first_loss"), run.get("train_loss")
    return first is None or last is None or last < LOSS_DROP * first


def _trainability(config: MeasureConfig, points: list[dict], runs: list[dict], chance: float,
                  metric: str, notes: list[str], ask) -> Generator[list[RunRequest], list[dict], str]:
    """"not trainable" when no subspace run trained, at ``lrs`` nor at the wider grid (measured in
    one round at the largest d tried, through the plan's ``ask``); else "measured"."""
    if any(_trained(run, chance, metric) for run in runs):
        return "measured"
    wider = [typed_rate(min(config.learning_rates) / WIDER_GRID_FACTOR),
             typed_rate(max(config.learning_rates) * WIDER_GRID_FACTOR)]
    d, knob = points[-1]["d"], points[-1]["knob"]
    requests = [RunRequest(False, knob, lr, seed) for lr in wider for seed in config.seeds]
    wider_runs = yield from ask(requests)
    trained_at = [lr for lr in wider
                  if any(_trained(wider_runs[RunRequest(False, knob, lr, seed)], chance, metric)
                         for seed in config.seeds)]
    tried = grid_text(sorted({*config.learning_rates, *wider}))
    if trained_at:
        notes.append(f"no subspace run trained at learning rates {grid_text(config.learning_rates)}, but at "
                     f"d = {d:,} runs train at {grid_text(trained_at)}: measure again with "
                     "learning rates that include it")
        return "measured"
    notes.append(f"not trainable with these settings: no subspace run beat chance by {TRAINED_MARGIN:g} or lowered "
                 f"its training loss below {LOSS_DROP:g} × its first value, at learning rates {tried} "
                 f"({' and '.join(f'{lr:g}' for lr in wider)} at d = {d:,} only)")
    return "not trainable"


def curve_uncertainty(points: list[dict], seeds: list[int], resolution: float, d90: int | None, target: float,
                      notes: list[str], kind: str) -> dict:
    """Per-seed d90s, the interval from resampling seeds, the monotone-fit d90 and the one-SEM flag
    of a curve (points with per-seed ``scores`` in the order of ``seeds``); caveats go to ``notes``."""
    name = "d90" if kind == "d90" else "chance-corrected d90"
    curves = {seed: {p["d"]: s for p, s in ((p, p["scores"][i]) for p in points) if s is not None}
              for i, seed in enumerate(seeds)}
    interval = stats.d90_interval(curves, target)
    finite = [p for p in points if p["n"] > 0]
    robust = stats.robust_d90([p["d"] for p in finite], [p["mean"] for p in finite], [p["n"] for p in finite],
                              target) if finite else None
    narrow = None
    if d90 is not None:
        at = next(p for p in points if p["d"] == d90)
        narrow = stats.clears_by_less_than_sem(at["mean"], at["std"], at["n"], target)
        if narrow:
            notes.append(f"the {name} {d90:,} clears its target by less than one standard error of its mean")
    if stats.steps_apart(d90, robust, resolution) > 1:
        shown = lambda d: "not reached" if d is None else f"{d:,}"  # noqa: E731
        notes.append(f"the {name} ({shown(d90)}) and the d where a monotone fit of the curve reaches the target "
                     f"({shown(robust)}) are more than one search step apart: the curve is noisy there")
    return {"per_seed": {str(seed): d for seed, d in stats.per_seed_d90s(curves, target).items()},
            "interval": None if interval is None else _finite(asdict(interval)), "robust": robust, "narrow": narrow}


def _finite(interval: dict) -> dict:
    """The interval for JSON: an end at infinity (a seed that never reached the target) becomes None."""
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in interval.items()}
