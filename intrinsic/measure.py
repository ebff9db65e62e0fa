"""``measure_d90``: full fine-tuning once, then the d90 search, every run cached in a store.

The measurement for one (model, task):

1. full fine-tuning for each seed (cached): the reference metric ``full``;
2. the chance score: the majority training class (train mean for regression) on dev;
3. for each d tried: every learning rate in ``lrs`` × every seed (each run cached); the score of
   d is the mean over seeds at the best learning rate;
4. d90 (the paper's: score ≥ threshold × full) and the chance-corrected d90
   (score ≥ chance + threshold × (full − chance)), found by ``search.find_smallest_d`` or, with
   ``dims``, read off an explicit list.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .bounds import ASSUMPTIONS as BOUND_ASSUMPTIONS
from .bounds import compression_bound
from .config import SubspaceConfig
from .models import ModelSpec, load_classifier, load_tokenizer, model_info, weights_fingerprint
from .projections.fastfood import RANDOM_SCHEME as FASTFOOD_RANDOM_SCHEME
from .search import chance_corrected_target, find_smallest_d, paper_target, smallest_hit
from .store import DEFAULT_STORE, ResultStore, library_versions
from .tasks import Task, chance_scores, get_task, load_task
from .training import TrainConfig, train_and_evaluate


@dataclass
class MeasureConfig:
    """Everything that defines one d90 measurement. Defaults are stated in the README."""

    model: str
    task: str
    data_dir: str | None = None
    projection: str = "fastfood"
    said: bool = False
    layout: str = "stacked"
    normalization: str = "global"
    dims: list[int] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    threshold: float = 0.9
    lrs: list[float] = field(default_factory=lambda: [1e-2, 3e-2, 1e-1])
    full_lr: float | list[float] = 2e-5  # several: the best mean over seeds is the baseline
    epochs: float = 3.0
    batch_size: int = 32
    max_length: int = 128
    max_train_samples: int | None = None
    start_d: int = 128
    max_d: int | None = None
    resolution: float = 0.25
    device: str = "auto"

    def __post_init__(self):
        if self.dims is not None and (not self.dims or any(int(d) <= 0 for d in self.dims)):
            raise ValueError(f"--dims must be positive integers, got {self.dims}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold must be in (0, 1], got {self.threshold}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        get_task(self.task)  # an unknown task fails here, before any model is loaded
        if any(lr <= 0 for lr in self.full_lrs) or any(lr <= 0 for lr in self.lrs):
            raise ValueError(f"learning rates must be positive, got --lr {self.lrs} --full-lr {self.full_lr}")

    @property
    def full_lrs(self) -> list[float]:
        return list(self.full_lr) if isinstance(self.full_lr, (list, tuple)) else [self.full_lr]


@dataclass
class D90Result:
    """One measurement: d90, the curve it came from, and everything needed to reproduce it."""

    model: str
    task: str
    metric: str
    D: int
    d90: int | None
    d90_chance_corrected: int | None
    threshold: float
    full_metric: float
    chance: float
    target: float
    target_chance_corrected: float
    train_examples: int
    curve: list[dict]  # {"d", "mean", "std", "n", "lr", "bound"} sorted by d
    failed_runs: int
    config: dict
    versions: dict
    notes: list[str] = field(default_factory=list)  # caveats a reader of d90 must know
    model_info: dict = field(default_factory=dict)  # label, params, non_embedding_params, step (models.model_info)
    full_lr: float | None = None  # the full fine-tuning learning rate that gave full_metric

    @property
    def label(self) -> str:
        """Short model name for tables and legends."""
        return self.model_info.get("label") or Path(self.model).name

    def _describe(self, d90: int | None, target: float) -> str:
        """d90 for people: the number, 'undefined' (target ≤ chance) or '> largest d tried'."""
        if d90 is not None:
            return f"{d90:,}"
        if target <= self.chance:
            return "undefined"
        return f"> {max((p['d'] for p in self.curve), default=0):,}"

    @property
    def bound_term(self) -> float | None:
        """√(d90/m): the d-dependent term of the compression bound, m training examples."""
        return None if self.d90 is None else math.sqrt(self.d90 / self.train_examples)

    def compression_bound(self) -> dict:
        """The compression bound (``intrinsic.bounds``) at d90 and at the chance-corrected d90.

        The training error L̂₀ is not measured by the runs, so each entry gives the gap in
        L₀ ≤ L̂₀ + gap; K is the number of dimensions the search tried.
        """
        def at(d):
            if d is None:
                return None
            return compression_bound(d, self.train_examples, num_dims_tried=max(1, len(self.curve))).to_dict()

        return {"d90": at(self.d90), "d90_chance_corrected": at(self.d90_chance_corrected),
                "statement": "L0 <= L0_train + sqrt((d ln 2^bits + ln(K/delta)) / (2m))",
                "assumptions": list(BOUND_ASSUMPTIONS)}

    def to_dict(self) -> dict:
        return {**asdict(self), "bound_term": self.bound_term, "compression_bound": self.compression_bound()}

    @classmethod
    def from_dict(cls, data: dict) -> "D90Result":
        """Inverse of :meth:`to_dict` (derived keys such as ``bound_term`` are recomputed)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def load(cls, path: str | Path) -> "D90Result":
        """Read a JSON summary written by ``measure-did --output``."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_frame(self):
        """The curve as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_frame needs pandas: pip install pandas") from error
        return pd.DataFrame(self.curve)

    def plot(self, ax=None):
        """Metric against d (log scale) with the threshold lines; returns the matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        ds = [p["d"] for p in self.curve]
        ax.errorbar(ds, [p["mean"] for p in self.curve], yerr=[p["std"] for p in self.curve],
                    marker="o", capsize=3, label=f"{self.config['projection']}, {'SAID' if self.config['said'] else 'DID'}")
        ax.axhline(self.full_metric, color="k", lw=1, label=f"full fine-tuning {self.full_metric:.3f}")
        ax.axhline(self.target, color="C1", ls="--", label=f"{self.threshold:.0%} of full")
        ax.axhline(self.target_chance_corrected, color="C2", ls=":", label="chance-corrected target")
        ax.axhline(self.chance, color="grey", ls="-.", lw=1, label=f"chance {self.chance:.3f}")
        ax.set_xlabel("subspace dimension d")
        ax.set_ylabel(f"dev {self.metric}")
        values = [p["mean"] for p in self.curve if p["n"]] + [self.chance, self.full_metric]
        ax.set_ylim(min(values) - 0.01, max(values) + 0.01)  # chance and full always in view
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))  # 2¹⁰ → 1,024
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{Path(self.model).name} on {self.task}: d90 = {self._describe(self.d90, self.target)}, "
                     f"chance-corrected {self._describe(self.d90_chance_corrected, self.target_chance_corrected)}",
                     fontsize=10)
        ax.legend(fontsize=8)
        return fig


class _Runner:
    """Loads the data once, runs (or fetches from the store) single training runs."""

    def __init__(self, config: MeasureConfig, store: ResultStore, progress: bool):
        self.config, self.store, self.progress = config, store, progress
        self.task: Task = get_task(config.task)
        self.train, self.dev = load_task(self.task, config.data_dir, config.max_train_samples)
        self.tokenizer = load_tokenizer(config.model)
        self.fingerprint = weights_fingerprint(config.model)
        # Stored runs are keyed by absolute paths: the same folder spelt two ways is one model.
        self.model_name = ModelSpec.parse(config.model).store_name()
        self.data_dir = None if config.data_dir is None else str(Path(config.data_dir).expanduser().resolve())
        self.warned_stale = False  # one warning per model when its folder changed since stored runs
        self.D: int | None = None
        self.info: dict = {}

    def _load_model(self, seed: int):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # our own bars show the runs
        torch.manual_seed(seed)  # the classification head is freshly initialised
        model = load_classifier(self.config.model, self.task.num_labels)
        if self.D is None:
            self.D = sum(p.numel() for p in model.parameters())
            self.num_tensors = sum(1 for p in model.parameters() if p.numel() > 0)
            self.info = model_info(self.config.model, model)
        return model

    def run(self, d: int | None, lr: float, seed: int) -> dict:
        """One run: full fine-tuning when d is None, else a subspace of dimension d."""
        c = self.config
        train_config = TrainConfig(lr=lr, epochs=c.epochs, batch_size=c.batch_size, max_length=c.max_length, seed=seed)
        subspace = None if d is None else SubspaceConfig(
            d=d, projection=c.projection, said=c.said, seed=seed, normalization=c.normalization,
            layout=c.layout if c.projection == "fastfood" else "stacked",
        )
        run_config = {
            "model": self.model_name, "task": self.task.name, "data_dir": self.data_dir,
            "max_train_samples": c.max_train_samples, "train": train_config.to_dict(),
            "subspace": None if subspace is None else subspace.to_dict(),
        }
        if subspace is not None and subspace.projection == "fastfood":
            run_config["fastfood_random"] = FASTFOOD_RANDOM_SCHEME  # which P a seed means
        record = self.store.record(run_config)
        if record is not None:
            stored = record.get("model_fingerprint")
            if stored is None or stored == self.fingerprint:  # records from before fingerprints are trusted
                return record["result"]
            if not self.warned_stale:
                warnings.warn(f"{c.model} has changed since runs of it were stored in {self.store.path}: "
                              "those runs are ignored and measured again", RuntimeWarning, stacklevel=2)
            self.warned_stale = True
        model = self._load_model(seed)
        if subspace is not None:
            from .wrapper import SubspaceWrapper

            model = SubspaceWrapper(model, config=subspace)
        label = "full fine-tuning" if d is None else f"d={d} lr={lr:g}"
        result = train_and_evaluate(model, self.task, self.tokenizer, self.train, self.dev, train_config,
                                    device=c.device, progress=self.progress,
                                    description=f"{label} seed={seed}").to_dict()
        self.store.put(run_config, result, model_fingerprint=self.fingerprint)
        return result


def measure_d90(config: MeasureConfig | None = None, *, results: str | Path = DEFAULT_STORE,
                progress: bool = True, **options) -> D90Result:
    """Measure d90 for one model and task; ``options`` are :class:`MeasureConfig` fields."""
    config = config or MeasureConfig(**options)
    runner = _Runner(config, ResultStore(results), progress)
    metric = runner.task.d90_metric

    # The baseline: full fine-tuning at each of full_lrs × seeds; the best mean over seeds counts.
    full, full_lr, errors = None, None, []
    for lr in config.full_lrs:
        runs = [runner.run(None, lr, seed) for seed in config.seeds]
        ok = [r["metrics"][metric] for r in runs if r["status"] == "ok"]
        errors += [r["error"] for r in runs if r["status"] != "ok"]
        if ok and (full is None or statistics.mean(ok) > full):
            full, full_lr = statistics.mean(ok), lr
    if full is None:
        raise RuntimeError(f"full fine-tuning failed for every seed and learning rate: {errors[0]}")
    chance = chance_scores(runner.task, runner.train, runner.dev)[metric]
    if runner.D is None:
        runner._load_model(config.seeds[0])

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
