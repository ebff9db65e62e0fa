"""Every figure of d90 measurements: one curve, d90 against pre-training step and against model size,
and the frontier of fine-tuning methods (metric against trainable parameters).

Each function takes :class:`~intrinsic.results.D90Result` objects (or a
:class:`~intrinsic.results.Sweep`), draws on ``ax`` or a new figure, and returns the figure.
``save_figure(fig, "runs/figures/name")`` writes ``name.png`` and ``name.svg``. matplotlib is
imported here and nowhere else in the package.

A d90 that the search did not reach (above the largest d tried) is drawn as an open triangle at the
largest d tried; an undefined one (target at or below chance) is left out and named in the legend;
a model that was not trainable with the measurement's settings is a cross at the largest d tried,
named as such. A d90 with an interval from resampling seeds carries it as a vertical bar (to the
largest d tried when a seed never reached the target).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

STYLES = {"d90": ("paper's d90 (0.9 × full)", "o", "-"),  # kind: legend name, marker, line style
          "corrected": ("chance-corrected d90", "s", "--")}


def _results(results) -> list:
    return list(getattr(results, "results", results))


def use_file_backend() -> None:
    """Draw off-screen (matplotlib's Agg backend), for commands that only write figure files."""
    import matplotlib

    matplotlib.use("Agg")


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _log2_axis(axis) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_minor_formatter(NullFormatter())


def _compact_count(value: float) -> str:
    """50k, 200k, 1M, 20M, 1.5B: short labels for parameter counts."""
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _count_axis(axis, span: float) -> None:
    """Log axis of counts: over a decade or more (``span`` = max/min ≥ 10) labelled at 1, 2 and 5 of
    each decade, since every minor label would collide; within one decade at every tick."""
    from matplotlib.ticker import FuncFormatter

    shown = (1, 2, 5) if span >= 10 else range(1, 10)

    def label(value, _):
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9) if value > 0 else 0
        return _compact_count(value) if any(abs(mantissa - m) < 1e-6 for m in shown) else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def fit_power_law(x, y) -> tuple[float, float]:
    """Least-squares line through (log10 x, log10 y): returns (slope, intercept). Needs ≥ 2 distinct x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or len(set(x.tolist())) < 2:
        raise ValueError("a power-law fit needs at least two distinct x values")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("a power-law fit needs positive x and y")
    slope, intercept = np.polyfit(np.log10(x), np.log10(y), 1)
    return float(slope), float(intercept)


def _series(ax, results, xs, kinds, color_offset=0) -> dict:
    """Plot d against xs for each kind; returns {kind: {"ok": [(x, d90)], "above": [(x, largest d tried)]}}
    (not-trainable results are drawn with the "above" ones' axis range in mind and listed there)."""
    defined = {}
    for i, kind in enumerate(kinds):
        name, marker, style = STYLES[kind]
        points, above, untrainable, bars, undefined = [], [], [], [], 0
        for x, result in zip(xs, results, strict=True):
            d, status = result.outcome(kind)
            if status == "ok":
                points.append((x, d))
                bars.append((x, d, _interval_ends(result, kind)))
            elif status == "above":
                above.append((x, d))
            elif status == "not trainable":
                untrainable.append((x, d))
            else:
                undefined += 1
        color = f"C{i + color_offset}"
        label = name + (f" ({undefined} undefined: target ≤ chance)" if undefined else "")
        if points:
            ax.plot(*zip(*sorted(points), strict=True), marker=marker, ls=style, color=color, label=label)
        elif undefined:
            ax.plot([], [], marker=marker, ls=style, color=color, label=label)
        for x, _, ends in bars:
            if ends is not None:
                ax.plot([x, x], ends, color=color, lw=1, alpha=0.6)
        if above:  # nested sizes, so coinciding markers of the two kinds both show
            ax.scatter(*zip(*above, strict=True), marker="^", facecolors="none", edgecolors=color,
                       s=60 + 70 * (len(kinds) - 1 - i), label=f"{name} not reached (≥ marker)")
        if untrainable and i == len(kinds) - 1:  # one cross per model: no kind is a measurement
            ax.scatter(*zip(*untrainable, strict=True), marker="x", color="k", s=60,
                       label="not trainable with these settings")
        defined[kind] = {"ok": points, "above": above + untrainable}
    return defined


def _interval_ends(result, kind: str) -> tuple[float, float] | None:
    """(low, high) of a d90's interval from resampling seeds; an unbounded high is the largest d tried."""
    interval = (result.uncertainty.get(kind) or {}).get("interval")
    if not interval or interval["low"] is None:
        return None
    largest = max(p["d"] for p in result.curve)
    return interval["low"], largest if interval["high"] is None else interval["high"]


def _log_y_or_say_why(ax, drawn: dict, base: int = 2) -> bool:
    """Log y axis when any d was drawn; else a note on the axes (a log axis of nothing is an error)."""
    if any(series["ok"] or series["above"] for series in drawn.values()):
        ax.set_yscale("log", base=base)
        return True
    ax.text(0.5, 0.5, "no d90 defined (every target ≤ chance)", transform=ax.transAxes, ha="center", fontsize=9)
    return False


def d90_curve(result, ax=None):
    """One result's dev metric against d (log₂ x) with error bars over seeds, full fine-tuning,
    chance and both targets; the title states both d90s. Returns the figure."""
    fig, ax = _axes(ax)
    ds = [p["d"] for p in result.curve]
    ax.errorbar(ds, [p["mean"] for p in result.curve], yerr=[p["std"] for p in result.curve], marker="o", capsize=3,
                label=f"{result.config['projection']}, {'SAID' if result.config['said'] else 'DID'}")
    ax.axhline(result.full_metric, color="k", lw=1, label=f"full fine-tuning {result.full_metric:.3f}")
    ax.axhline(result.target, color="C1", ls="--", label=f"{result.threshold:.0%} of full")
    ax.axhline(result.target_chance_corrected, color="C2", ls=":", label="chance-corrected target")
    ax.axhline(result.chance, color="grey", ls="-.", lw=1, label=f"chance {result.chance:.3f}")
    ax.set_xlabel("subspace dimension d")
    ax.set_ylabel(f"dev {result.metric}")
    values = [p["mean"] for p in result.curve if p["n"]] + [result.chance, result.full_metric]
    ax.set_ylim(min(values) - 0.01, max(values) + 0.01)  # chance and full always in view
    ax.set_xscale("log", base=2)
    _log2_axis(ax.xaxis)  # 2¹⁰ → 1,024
    for kind, color in (("d90", "C1"), ("corrected", "C2")):
        ends = _interval_ends(result, kind) if result.outcome(kind)[1] == "ok" else None
        if ends is not None and ends[1] > ends[0]:
            ax.axvspan(*ends, color=color, alpha=0.12, label=f"{STYLES[kind][0]}: interval over seeds")
    ax.set_title(f"{Path(result.model).name} on {result.task}: d90 = {result.describe('d90')}, "
                 f"chance-corrected {result.describe('corrected')}"
                 + ("" if result.selection == "validation" else " (lr chosen on dev)"), fontsize=10)
    ax.legend(fontsize=8)
    return fig


def d90_vs_step(results, ax=None, kinds=("d90", "corrected"), title: str | None = None):
    """d90 (log₂ y) against the pre-training step of each result (``model_info['step']``, linear x)."""
    results = _results(results)
    steps = [r.model_info.get("step") for r in results]
    if any(s is None for s in steps):
        missing = [r.label for r, s in zip(results, steps, strict=True) if s is None]
        raise ValueError(f"no pre-training step known for {missing}: name folders step-N or add pretraining.json")
    fig, ax = _axes(ax)
    if _log_y_or_say_why(ax, _series(ax, results, steps, kinds)):
        _log2_axis(ax.yaxis)
    ax.set_xlabel("pre-training step")
    ax.set_ylabel("d90")
    r = results[0]
    ax.set_title(title or f"d90 over pre-training ({r.task}, {_method_label(r)})", fontsize=10)
    _legend_beside(ax)  # markers of d90s not reached sit at the top, where a legend inside would hide them
    return fig


def _method_label(result) -> str:
    return result.method.upper() if result.method in ("did", "said") else result.method


def _legend_beside(ax) -> None:
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def d90_vs_params(results, ax=None, kinds=("d90", "corrected"), params: str = "non_embedding_params",
                  title: str | None = None):
    """d90 against parameter count, log–log, with the fitted slope of each kind in its legend.

    ``params``: ``"non_embedding_params"`` (default) or ``"params"``. Returns the figure;
    ``fig.fits`` maps each kind to (slope, intercept) or None when fewer than two points are defined.
    """
    results = _results(results)
    sizes = [r.model_info.get(params) or (r.D if params == "params" else None) for r in results]
    if any(s is None for s in sizes):
        raise ValueError(f"parameter count {params!r} unknown for some results; remeasure with this version")
    fig, ax = _axes(ax)
    defined = _series(ax, results, sizes, kinds)
    fits = {}
    for i, kind in enumerate(kinds):
        points = defined[kind]["ok"]  # markers of d90s not reached are not fitted
        fits[kind] = None
        if len({x for x, _ in points}) >= 2:
            slope, intercept = fit_power_law(*zip(*points, strict=True))
            fits[kind] = (slope, intercept)
            grid = np.geomspace(min(sizes), max(sizes), 50)
            ax.plot(grid, 10 ** intercept * grid ** slope, color=f"C{i}", lw=1, alpha=0.5,
                    label=f"fit: d90 ∝ N^{slope:.2f}")
    for x, r in zip(sizes, results, strict=True):
        d, status = r.outcome(kinds[-1])
        if status != "undefined":
            ax.annotate(r.label, (x, d), xytext=(4, 4), textcoords="offset points", fontsize=7, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 2, max(sizes) * 2)  # the models' sizes frame the axis, even with no d90 drawn
    _count_axis(ax.xaxis, max(sizes) / min(sizes))
    if _log_y_or_say_why(ax, defined, base=2):
        _log2_axis(ax.yaxis)
    ax.set_xlabel("non-embedding parameters" if params == "non_embedding_params" else "parameters")
    ax.set_ylabel("d90")
    r = results[0]
    ax.set_title(title or f"d90 against model size ({r.task}, {_method_label(r)})", fontsize=10)
    _legend_beside(ax)
    fig.fits = fits
    return fig


def curves(results, ax=None, normalized: bool = False, title: str | None = None):
    """Dev metric against d for each result, overlaid (log₂ x).

    ``normalized=True`` plots (metric − chance) / (full − chance): 0 is chance, 1 full fine-tuning,
    so models with different baselines share the 0.9 line.
    """
    results = _results(results)
    fig, ax = _axes(ax, figsize=(7, 4.5))
    every_d = []
    for i, r in enumerate(results):
        points = [p for p in r.curve if p["n"]]
        ds = [p["d"] for p in points]
        every_d += ds
        label = f"{r.label} (full {r.full_metric:.3f})"
        if normalized:
            span = r.full_metric - r.chance
            ys = [(p["mean"] - r.chance) / span if span > 0 else math.nan for p in points]
            label += "" if span > 0 else ": full fine-tuning does not beat chance, nothing to normalise"
        else:
            ys = [p["mean"] for p in points]
            ax.axhline(r.target_chance_corrected, color=f"C{i}", ls=":", lw=1)
        ax.plot(ds, ys, marker="o", ms=4, color=f"C{i}", label=label)
    if normalized:
        threshold = results[0].threshold
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"{threshold:g} of the gain over chance")
        ax.axhline(0, color="grey", ls="-.", lw=1)
        ax.set_ylabel("(metric − chance) / (full − chance)")
    else:
        ax.set_ylabel(f"dev {results[0].metric} (dotted: chance-corrected targets)")
    ax.set_xscale("log", base=2)
    if every_d:  # the d measured frame the axis, even when no curve has a finite value
        ax.set_xlim(min(every_d) / 1.5, max(every_d) * 1.5)
    _log2_axis(ax.xaxis)
    ax.set_xlabel("subspace dimension d")
    ax.set_title(title or f"{results[0].task}: dev metric against d", fontsize=10)
    # Outside the axes: inside, the legend hides the 0.9 line or a curve once several models share it.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


FRONTIER_MARKERS = "osD^vP<>Xph*"


def frontier(frontier, ax=None, kind: str = "d90", title: str | None = None):
    """A :class:`~intrinsic.frontier.Frontier`: dev metric against trainable parameters (log x).

    One curve per method (mean over seeds with std error bars; a method of fixed size is one
    point), a star at its parameters-to-90 % for ``kind`` ("d90": the paper's target, "corrected":
    the chance-corrected one), horizontal lines for full fine-tuning, both targets, chance and the
    references (head-only, untrained), and beside the axes a table of the methods sorted by
    trainable parameters at the target, their names in their curves' colours. Returns the figure.
    """
    import matplotlib.pyplot as plt

    from .results import KINDS

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    fig, ax = _axes(ax, figsize=(11, 5))
    first = frontier.first
    palette = plt.get_cmap("tab20").colors
    # tab20's dark shades for the first ten methods, its light ones for the next ten
    colors = {r.method: palette[2 * (i % 10) + (i // 10) % 2] for i, r in enumerate(frontier.results)}
    xs, ys = [], [first.chance, first.full_metric]
    for i, result in enumerate(frontier.results):
        points = sorted((p for p in result.curve if p["n"]), key=lambda p: p["trainable"])
        if not points:
            continue
        x, y = [p["trainable"] for p in points], [p["mean"] for p in points]
        xs, ys = xs + x, ys + y
        ax.errorbar(x, y, yerr=[p["std"] for p in points], color=colors[result.method], lw=1, ms=4, capsize=2,
                    marker=FRONTIER_MARKERS[i % len(FRONTIER_MARKERS)], label=result.method)
        point = frontier.at_target(result, kind)
        if point is not None:
            ax.scatter([point["trainable"]], [point["mean"]], marker="*", s=160, color=colors[result.method],
                       edgecolors="k", linewidths=0.6, zorder=3, label=f"_{result.method} at the target")
    references = [(first.full_metric, f"full fine-tuning {first.full_metric:.3f}", {"color": "k", "lw": 1.2}),
                  (first.target, f"{first.threshold:g} × full {first.target:.3f}", {"color": "k", "ls": "--"}),
                  (first.target_chance_corrected, f"chance-corrected target {first.target_chance_corrected:.3f}",
                   {"color": "k", "ls": ":"}),
                  (first.chance, f"chance {first.chance:.3f}", {"color": "grey", "ls": "-."})]
    for (name, ref), style in zip(frontier.references.items(),
                                  ({"color": "tab:brown", "lw": 2, "alpha": 0.5}, {"color": "grey", "ls": (0, (1, 3))}),
                                  strict=False):
        size = f", {ref['trainable']:,} parameters" if ref.get("trainable") else ""
        references.append((ref["mean"], f"{name} {ref['mean']:.3f}{size}", style))
        ys.append(ref["mean"])
    lines = [ax.axhline(value, label=label, **{"lw": 1, **style}) for value, label, style in references]
    ax.set_ylim(min(ys) - 0.02, max(ys) + 0.02)
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
        _count_axis(ax.xaxis, max(xs) / min(xs))
    else:
        ax.text(0.5, 0.5, "no method has a measured point", transform=ax.transAxes, ha="center", fontsize=9)
    ax.set_xlabel("trainable parameters (★: the smallest setting that reaches the target)")
    ax.set_ylabel(f"dev {first.metric}")
    which = "paper's" if kind == "d90" else "chance-corrected"
    ax.set_title(title or f"{first.label} on {first.task}: parameters to reach the {which} target "
                          f"(head {frontier.head})", fontsize=10)
    ax.legend(handles=lines, fontsize=7, loc="lower right")
    _frontier_table(ax, frontier, kind, colors)
    return fig


def _frontier_table(ax, frontier, kind: str, colors: dict) -> None:
    """The methods sorted by trainable parameters at the target, to the right of ``ax``."""
    rows = frontier.rows(kind)
    cells = []
    for row in rows:
        if row["trainable"] is None:
            knob = "not reached" if row["described"].startswith(">") else row["described"]
        else:
            knob = "fixed size" if row["knob"] is None else f"{row['knob']} = {row['knob_at_90']:,}"
        counts = ("-" if row[key] is None else f"{row[key]:,}" for key in ("trainable", "stored"))
        cells.append([row["method"], knob, *counts])
    table = ax.table(cellText=cells, colLabels=["method", "setting at target", "trainable", "stored"],
                     cellLoc="left", colLoc="left", colWidths=[0.3, 0.38, 0.16, 0.16], bbox=[1.03, 0.0, 0.55, 1.0])
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for i, row in enumerate(rows, start=1):
        table[i, 0].get_text().set_color(colors[row["method"]])
    for (_, _), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
    notes = [f"note: {n}" for n in frontier.notes]
    if notes:
        ax.text(0, -0.14, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=7, wrap=True)


_NO_DATE = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}  # PNG stores no date


def save_figure(fig, stem: str | Path, formats=("png", "svg")) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (a suffix on ``stem`` is dropped); returns the paths.

    The same figure gives the same bytes: no date in the metadata and a fixed salt for the SVG's
    element ids, so redrawing unchanged results leaves committed figures unchanged."""
    import matplotlib

    stem = Path(stem)
    stem = stem.with_suffix("") if stem.suffix.lower() in {".png", ".svg", ".pdf"} else stem
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    with matplotlib.rc_context({"svg.hashsalt": "intrinsic"}):
        for path in paths:
            fig.savefig(path, dpi=150, bbox_inches="tight", metadata=_NO_DATE.get(path.suffix.lower()))
    return paths
