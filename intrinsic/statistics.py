"""Statistics of a d90 measurement: per-seed d90s, an interval from resampling seeds, a robust d90.

Pure functions of measured scores (numpy only). The shapes used throughout:

- a *curve by seed*, ``curves``: ``{seed: {d: score}}``, the metric of each seed's run at each d
  measured (at the learning rate the measurement chose for that d). A d missing from a seed's
  curve, or a score that is NaN or −inf, is a failed run and counts as a miss, never as a hit.
- *points*: ``[(d, scores), ...]``, the per-seed scores at each measured d; the mean over them is
  what the d90 search compares with the target (see :mod:`intrinsic.search`).

d90s are measured d's (ints ≥ 1) or None for "not reached"; an :class:`Interval` writes "not
reached" as ``math.inf`` so that its ends order correctly, and never as the largest d tried.
Deciding whether a target is meaningful at all (at or below chance) is the caller's business.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .search import smallest_hit

Curves = Mapping[Hashable, Mapping[int, float]]


@dataclass(frozen=True)
class Interval:
    """An interval for d90 over seeds.

    ``low`` and ``high`` are measured d's, or ``math.inf`` for "the target is not reached": a
    ``high`` of inf means the upper end is unbounded (some resampled curve, or some seed, never
    reaches the target within the d's measured); a ``low`` of inf means no seed reaches it at all.
    ``method`` says how the interval was made; ``level`` is its nominal coverage (e.g. 0.9) for
    the bootstrap, None for the min–max of per-seed d90s, which has no stated coverage.
    """

    low: float
    high: float
    method: str
    level: float | None = None

    @property
    def unbounded(self) -> bool:
        """True when the upper end is unbounded: some seed or resample never reaches the target."""
        return math.isinf(self.high)


def smallest_mean_hit(points: Iterable[tuple[int, Sequence[float]]], target: float) -> int | None:
    """The smallest d whose mean score over seeds is ≥ ``target``, or None if no d reaches it.

    ``points``: ``[(d, scores), ...]`` with ``scores`` the per-seed metric values at d. An empty
    ``scores`` (every run at d failed) has mean −inf, a miss, as in ``D90Result.curve``; a NaN
    among the scores makes the mean NaN, also a miss. This is :func:`intrinsic.search.smallest_hit`
    (the d90 the measurement reports) applied to the means, so both give the same d.
    """
    return smallest_hit({int(d): (float(np.mean(scores)) if len(scores) else -math.inf) for d, scores in points},
                        target)


def per_seed_d90s(curves: Curves, target: float) -> dict[Hashable, int | None]:
    """{seed: d90 of that seed alone}: the smallest measured d whose score for that seed is ≥ target.

    ``curves``: ``{seed: {d: score}}``. A seed that never reaches ``target`` maps to None.
    Failed runs (NaN or −inf, or a d absent from the seed's curve) are misses.
    """
    return {seed: smallest_hit({int(d): s for d, s in curve.items()}, target) for seed, curve in curves.items()}


def _score_matrix(curves: Curves) -> tuple[np.ndarray, np.ndarray]:
    """(ds, S): the union of measured d's ascending, shape (n_d,), and S[i, j] = score of the
    i-th seed (seeds sorted) at ds[j], shape (n_seeds, n_d), NaN where that run is missing."""
    seeds = sorted(curves)
    ds = np.array(sorted({int(d) for curve in curves.values() for d in curve}), dtype=np.int64)
    column = {int(d): j for j, d in enumerate(ds)}
    scores = np.full((len(seeds), len(ds)), np.nan)
    for i, seed in enumerate(seeds):
        for d, s in curves[seed].items():
            scores[i, column[int(d)]] = s
    return ds, scores


def _first_hits(ds: np.ndarray, means: np.ndarray, target: float) -> np.ndarray:
    """For each row of ``means`` (shape (n, n_d)), the smallest ds[j] with means[., j] ≥ target,
    as float; inf where none (NaN compares False, so a failed run is a miss)."""
    with np.errstate(invalid="ignore"):
        hits = means >= target
    first = np.argmax(hits, axis=1)
    return np.where(hits.any(axis=1), ds[first].astype(float), math.inf)


def d90_interval(curves: Curves, target: float, *, n_boot: int = 2000, level: float = 0.9,
                 rng_seed: int = 0) -> Interval | None:
    """An interval for d90 from resampling seeds; None with fewer than two seeds (no spread).

    ``curves``: ``{seed: {d: score}}``, every seed's curve (not only its d90: the bootstrap
    averages resampled curves). ``target``: the score d90 must reach.

    - 2–3 seeds: ``(min, max)`` of the per-seed d90s (:func:`per_seed_d90s`), method
      ``"min-max of per-seed d90s"``, ``level`` None. Too few seeds for a bootstrap to mean much.
    - ≥ 4 seeds: a percentile bootstrap over seeds: ``n_boot`` times, draw as many seeds as there
      are with replacement, average their curves at each d (a d where a drawn seed has no score
      is a miss, like a d with a failed run in the measurement), and take that mean curve's
      smallest hit. The ends are the (1 − level)/2 and (1 + level)/2 quantiles of those d90s,
      rounded outward to d's that occurred (numpy's "lower"/"higher"); method
      ``"bootstrap over seeds (percentile, <level>)"``. Deterministic for a given ``rng_seed``
      (seeds are taken in sorted order, so the dict's order does not matter).

    A seed (or resample) that never reaches the target gives ``high = math.inf``: unbounded.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if len(curves) < 2:
        return None
    if len(curves) <= 3:
        d90s = [math.inf if d is None else d for d in per_seed_d90s(curves, target).values()]
        return Interval(min(d90s), max(d90s), "min-max of per-seed d90s", None)
    ds, scores = _score_matrix(curves)
    rng = np.random.default_rng(rng_seed)
    draws = rng.integers(0, len(scores), size=(n_boot, len(scores)))
    means = scores[draws].mean(axis=1)  # (n_boot, n_d); NaN where a drawn seed lacks d
    d90s = _first_hits(ds, means, target)
    alpha = (1 - level) / 2
    low = float(np.quantile(d90s, alpha, method="lower"))
    high = float(np.quantile(d90s, 1 - alpha, method="higher"))
    return Interval(low, high, f"bootstrap over seeds (percentile, {level:g})", level)


def _sorted_points(ds: Sequence[int], means: Sequence[float],
                   weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ds, means, weights = (np.asarray(x) for x in (ds, means, weights))
    if not len(ds) == len(means) == len(weights):
        raise ValueError(f"ds, means and weights differ in length: {len(ds)}, {len(means)}, {len(weights)}")
    if not np.all(np.isfinite(means)):
        raise ValueError("means must be finite: drop the d's whose runs all failed (n == 0) before fitting")
    if not np.all(weights > 0):
        raise ValueError("weights (runs per d) must be positive: drop the d's with no runs before fitting")
    order = np.argsort(ds, kind="stable")
    ds = ds[order]
    if np.any(np.diff(ds) == 0):
        raise ValueError("each d must appear once")
    return ds, means[order].astype(float), weights[order].astype(float)


def _pava(means: np.ndarray, weights: np.ndarray) -> list[tuple[int, int, float, float]]:
    """Pool adjacent violators: [(first index, last index, weighted mean, total weight), ...]."""
    blocks: list[tuple[int, int, float, float]] = []
    for i, (m, w) in enumerate(zip(means.tolist(), weights.tolist(), strict=True)):
        blocks.append((i, i, m, w))
        while len(blocks) > 1 and blocks[-2][2] > blocks[-1][2]:
            (a, _, m1, w1), (_, b, m2, w2) = blocks.pop(-2), blocks.pop()
            blocks.append((a, b, (m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2))
    return blocks


def pooled_blocks(ds: Sequence[int], means: Sequence[float],
                  weights: Sequence[float]) -> list[tuple[int, int, float, float]]:
    """The blocks of the isotonic fit: ``[(d_first, d_last, value, weight), ...]`` ascending in d.

    Each block is a run of adjacent measured d's (d_first..d_last, inclusive) that the
    pool-adjacent-violators algorithm merged: ``value`` is their weighted mean score and
    ``weight`` the sum of their weights. A block of one d was left as measured; a longer block
    is where the measured curve fell as d grew. Inputs as for :func:`monotone_fit`.
    """
    ds, means, weights = _sorted_points(ds, means, weights)
    return [(int(ds[a]), int(ds[b]), value, weight) for a, b, value, weight in _pava(means, weights)]


def monotone_fit(ds: Sequence[int], means: Sequence[float], weights: Sequence[float]) -> np.ndarray:
    """Isotonic (non-decreasing) regression of mean score against log d, weighted by runs per d.

    ``ds``: the measured d's (distinct, any order); ``means``: the mean score at each (finite:
    drop d's whose runs all failed); ``weights``: the number of runs behind each mean (> 0).
    Returns the fitted values, shape (len(ds),), in the order of ``ds`` sorted ascending.

    Why isotonic: random subspaces of different d are not nested, so a larger d is not
    guaranteed to do as well; the assumption is only that more dimensions do not hurt in
    expectation. Where the measured curve falls as d grows, that is taken as noise and the
    pool-adjacent-violators algorithm replaces the offending run of points by their weighted
    mean, the least-squares non-decreasing fit. Only the order of d matters, so fitting against
    log d or d is the same fit.
    """
    _, means, weights = _sorted_points(ds, means, weights)
    return np.array([value for a, b, value, _ in _pava(means, weights) for _ in range(a, b + 1)], dtype=float)


def robust_d90(ds: Sequence[int], means: Sequence[float], weights: Sequence[float],
               target: float) -> int | None:
    """The smallest measured d where :func:`monotone_fit` reaches ``target``, or None if none does.

    Inputs as for :func:`monotone_fit`. It is never below the smallest-hit d90 over the same
    points (within a pooled block every leading run of points averages at least the block's
    value, so the block's first d reaches the target whenever the block does), and it is
    higher where a lone early hit is followed by misses: the fit pools the hit with them.
    """
    # The fit is constant on each block and rises from block to block: the first block that
    # reaches the target starts where the fit first does.
    return next((first for first, _, value, _ in pooled_blocks(ds, means, weights) if value >= target), None)


def steps_apart(d_a: int | None, d_b: int | None, resolution: float) -> float:
    """How many search steps separate ``d_a`` and ``d_b``: |log(d_a / d_b)| / log(1 + resolution).

    ``resolution`` is the search's (:func:`intrinsic.search.find_smallest_d`): the bisection stops
    when first hit / last miss ≤ 1 + resolution, so one step is a factor of 1 + resolution; a
    result > 1 means the two d90s differ by more than the search can resolve. None stands for
    "not reached": one None gives inf, two give 0.0.
    """
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if d_a is None or d_b is None:
        return 0.0 if d_a is None and d_b is None else math.inf
    if d_a < 1 or d_b < 1:
        raise ValueError(f"d's must be ≥ 1, got {d_a} and {d_b}")
    return abs(math.log(d_a / d_b)) / math.log1p(resolution)


def clears_by_less_than_sem(mean: float, std: float, n: int, target: float) -> bool | None:
    """True when ``mean − target < std / √n``: the target is cleared by less than one standard error.

    ``mean`` and ``std`` are the mean and sample standard deviation (ddof = 1, as in
    ``D90Result.curve``) of the ``n`` per-seed scores at d. The margin is signed, so a mean below
    the target gives True too; apply it to the d90's point. With ``n == 1`` there is no standard
    error (one seed says nothing about the spread) and the answer is None, not False.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n == 1:
        return None
    return bool(mean - target < std / math.sqrt(n))
