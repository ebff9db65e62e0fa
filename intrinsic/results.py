"""Result types: :class:`D90Result` (one model and task) and :class:`Sweep` (several models, one configuration).

Both round-trip through JSON: ``measure-did --output`` writes ``D90Result.to_dict()`` (one model)
or ``Sweep.to_dict()`` = ``{"results": [...]}`` (several); :func:`load_results` reads either.
Figures of results are drawn by ``intrinsic.plots``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .bounds import ASSUMPTIONS as BOUND_ASSUMPTIONS
from .bounds import compression_bound

KINDS = ("d90", "corrected")  # the paper's d90 and the chance-corrected d90


@dataclass
class D90Result:
    """One measurement: d90, the curve it came from, and everything needed to reproduce it.

    ``curve`` holds one point per d measured, sorted by d: ``{"d", "knob", "mean", "std", "n", "lr",
    "selection_mean", "scores", "bound", "trainable", "stored", "head"}``: the dev mean, standard
    deviation and count over seeds at the learning rate ``lr`` chosen on the selection split
    (``selection_mean``: its mean there), the per-seed dev ``scores`` in the order of
    ``config["seeds"]``, ``bound`` = √(d/m) and the method's three counts
    (:class:`intrinsic.methods.Counts`); ``n == 0`` and mean −inf when no learning rate had every
    seed succeed. ``d`` is the method's knob (``knob``), or its trainable count for a method of
    fixed size (``knob`` None). ``method``, ``knob`` (the knob's name) and ``head`` (the head
    policy) say what was measured; d90 is the smallest knob reaching the target.

    ``selection`` is where learning rates were chosen: "validation" (held out of the training
    file; ``validation_examples`` of them) or "dev" (optimistic: dev also reports). ``uncertainty``
    holds, per kind ("d90", "corrected") whose target is above chance: ``per_seed`` (seed → d90 or
    None), ``interval`` (``intrinsic.statistics.Interval`` as a dict; an end of None is unbounded:
    a seed never reached the target), ``robust`` (the d where a monotone fit of the curve reaches
    the target) and ``narrow`` (the d90 clears its target by less than one standard error; None
    with one seed). ``status`` is "measured", or "not trainable" when no subspace run trained
    (see ``intrinsic.measure``): then neither d90 is a measurement.
    """

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
    curve: list[dict]
    failed_runs: int
    config: dict
    versions: dict
    notes: list[str] = field(default_factory=list)  # caveats a reader of d90 must know
    model_info: dict = field(default_factory=dict)  # label, params, non_embedding_params, step (models.model_info)
    full_lr: float | None = None  # the full fine-tuning learning rate that gave full_metric
    selection: str = "dev"  # results written before selection was recorded chose on dev
    validation_examples: int | None = None
    full_selection_metric: float | None = None  # full fine-tuning's mean on the selection split
    full_scores: list | None = None  # full fine-tuning's per-seed dev metric
    uncertainty: dict = field(default_factory=dict)
    status: str = "measured"  # or "not trainable"
    method: str = "did"  # the fine-tuning method (intrinsic.methods); "said" in results written before methods
    knob: str | None = "d"  # the name of its size setting; None for a method of fixed size
    head: str = "projected"  # the head policy

    @property
    def label(self) -> str:
        """Short model name for tables and legends."""
        return self.model_info.get("label") or Path(self.model).name

    def outcome(self, kind: str = "d90") -> tuple[int | None, str]:
        """(d, status) of one of the two d90s (``kind`` "d90" or "corrected").

        status "ok": d is the d90; "above": the target was not reached and d is the largest d
        tried (None if none was); "undefined": the target is at or below chance, d is None;
        "not trainable": no subspace run trained (``status``), d is the largest d tried.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        d, target = ((self.d90, self.target) if kind == "d90"
                     else (self.d90_chance_corrected, self.target_chance_corrected))
        if d is not None:
            return d, "ok"
        if target <= self.chance:
            return None, "undefined"
        largest = max((p["d"] for p in self.curve), default=None)
        return largest, "not trainable" if self.status == "not trainable" else "above"

    def describe(self, kind: str = "d90") -> str:
        """One d90 for people: "1,024", "undefined" (target ≤ chance) or "> 4,096" (largest d tried)."""
        d, status = self.outcome(kind)
        if status == "ok":
            return f"{d:,}"
        if status in ("undefined", "not trainable"):
            return status
        return f"> {d or 0:,}"

    def interval(self, kind: str = "d90") -> str:
        """The d90's interval from resampling seeds for people: "[724, 1,448]", "[724, ∞)" or "-"."""
        entry = self.uncertainty.get(kind) or {}
        interval = entry.get("interval")
        if not interval or interval["low"] is None:
            return "-" if not interval else "never reached"
        high = "∞)" if interval["high"] is None else f"{interval['high']:,.0f}]"
        return f"[{interval['low']:,.0f}, {high}"

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

    def table(self) -> str:
        """The curve, one row per d, then both targets, both d90s, the bound and the notes."""
        chosen = "validation" if self.selection == "validation" else "dev (lr)"
        lines = [f"{'d':>10}  {'dev ' + self.metric:>22}  {'lr':>7}  {chosen:>10}  {'≥ target':>8}  "
                 f"{'≥ corrected':>11}  {'√(d/m)':>7}"]
        for p in self.curve:
            value = "failed" if p["n"] == 0 else f"{p['mean']:.4f} ± {p['std']:.4f}"
            chosen_on = p.get("selection_mean")
            lines.append(f"{p['d']:>10,}  {value:>22}  {p['lr'] or '-':>7}  "
                         f"{'-' if chosen_on is None else format(chosen_on, '.4f'):>10}  "
                         f"{'yes' if p['mean'] >= self.target else 'no':>8}  "
                         f"{'yes' if p['mean'] >= self.target_chance_corrected else 'no':>11}  {p['bound']:>7.3f}")
        lines += [
            "",
            f"model {self.model}  task {self.task}  D = {self.D:,}  train examples m = {self.train_examples:,}",
            f"full fine-tuning {self.metric} {self.full_metric:.4f}"
            f"{'' if self.full_lr is None else f' (lr {self.full_lr:g})'}   chance (majority class) {self.chance:.4f}",
            f"learning rates chosen on {self._selection_text()}",
            f"d90 (≥ {self.threshold:g} × full = {self.target:.4f}): {self.describe('d90')}{self._spread('d90')}",
            f"chance-corrected d90 (≥ chance + {self.threshold:g}·(full − chance) = "
            f"{self.target_chance_corrected:.4f}): {self.describe('corrected')}{self._spread('corrected')}",
        ]
        bound = self.compression_bound()
        for name, entry in (("d90", bound["d90"]), ("chance-corrected d90", bound["d90_chance_corrected"])):
            if entry is not None:
                lines.append(f"compression bound at {name} = {entry['d']:,}: L0 ≤ L0_train + {entry['gap']:.3f} "
                             f"({entry['bits']}-bit θ_d, δ = {entry['delta']:g}, K = {entry['num_dims_tried']} d "
                             f"tried, m = {entry['m']:,}{'; vacuous' if entry['vacuous'] else ''}; "
                             "see intrinsic.bounds)")
        lines += [f"note: {note}" for note in self.notes]
        if self.failed_runs:
            lines.append(f"{self.failed_runs} run(s) failed (NaN or diverging loss) and were skipped")
        return "\n".join(lines)

    def _selection_text(self) -> str:
        if self.selection == "validation":
            return f"a validation split of {self.validation_examples:,} training-file examples; dev only reports"
        return "dev, which also reports (optimistic)"

    def _spread(self, kind: str) -> str:
        """"; seeds 724/1,024/1,448, interval [724, 1,448] (min–max …), monotone fit 1,024" or ""."""
        entry = self.uncertainty.get(kind)
        if not entry:
            return ""
        seeds = "/".join("-" if d is None else f"{d:,}" for d in entry["per_seed"].values())
        parts = [f"per seed {seeds}"]
        if entry["interval"]:
            parts.append(f"interval {self.interval(kind)} ({entry['interval']['method']})")
        parts.append(f"monotone fit {'not reached' if entry['robust'] is None else format(entry['robust'], ',')}")
        if entry["narrow"]:
            parts.append("clears its target by < 1 standard error")
        return "; " + ", ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "bound_term": self.bound_term, "compression_bound": self.compression_bound()}

    @classmethod
    def from_dict(cls, data: dict) -> D90Result:
        """Inverse of :meth:`to_dict` (derived keys such as ``bound_term`` are recomputed)."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        if "method" not in data and (data.get("config") or {}).get("said"):  # written before methods
            known["method"] = "said"
        return cls(**known)

    @classmethod
    def load(cls, path: str | Path) -> D90Result:
        """Read a JSON summary written by ``measure-did --output``."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_frame(self):
        """The curve as a pandas DataFrame, one row per d, with both d90s, their intervals (an end
        of None: unbounded) and monotone-fit d90s, the selection mode and the status repeated on
        every row (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError("to_frame needs pandas: pip install pandas") from error
        frame = pd.DataFrame(self.curve)
        for kind, prefix in (("d90", "d90"), ("corrected", "d90_corrected")):
            entry = self.uncertainty.get(kind) or {}
            interval = entry.get("interval") or {}
            frame[prefix] = self.outcome(kind)[0] if self.outcome(kind)[1] == "ok" else None
            frame[f"{prefix}_low"], frame[f"{prefix}_high"] = interval.get("low"), interval.get("high")
            frame[f"{prefix}_robust"] = entry.get("robust")
        frame["selection"], frame["status"] = self.selection, self.status
        return frame

    def plot(self, ax=None):
        """Metric against d with the targets (``intrinsic.plots.d90_curve``); returns the figure."""
        from .plots import d90_curve

        return d90_curve(self, ax=ax)


@dataclass
class Sweep:
    """The d90 results of several models measured with one configuration, in the order given."""

    results: list[D90Result]

    def table(self) -> str:
        """One row per model: sizes, step, full and chance scores, both d90s, the bound's gap at d90."""
        header = (f"{'model':<28} {'params':>11} {'non-emb':>11} {'step':>7} {'full':>6} {'chance':>6} "
                  f"{'d90':>13} {'corrected':>13} {'interval (corrected)':>20} {'gap@d90':>8}")
        lines = [header]
        for r in self.results:
            info = r.model_info
            bound = r.compression_bound()["d90_chance_corrected"]
            lines.append(
                f"{r.label[:28]:<28} {info.get('params', r.D):>11,} {_number(info.get('non_embedding_params')):>11} "
                f"{_number(info.get('step')):>7} {r.full_metric:>6.3f} {r.chance:>6.3f} "
                f"{r.describe('d90'):>13} {r.describe('corrected'):>13} {r.interval('corrected'):>20} "
                f"{'-' if bound is None else format(bound['gap'], '.3f'):>8}")
        if self.results:
            r = self.results[0]
            lines.append(f"task {r.task}, dev {r.metric}; d90 at ≥ {r.threshold:g} × full, corrected at ≥ chance + "
                         f"{r.threshold:g}·(full − chance); gap@d90: compression-bound gap at the corrected d90 "
                         f"(16-bit θ_d, δ = 0.05, intrinsic.bounds); learning rates chosen on "
                         f"{'a held-out validation split' if r.selection == 'validation' else 'dev (optimistic)'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"results": [r.to_dict() for r in self.results]}

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
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
