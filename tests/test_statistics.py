import math

import numpy as np
import pytest

from intrinsic.search import smallest_hit
from intrinsic.statistics import (
    Interval,
    clears_by_less_than_sem,
    d90_interval,
    monotone_fit,
    per_seed_d90s,
    pooled_blocks,
    robust_d90,
    smallest_mean_hit,
    steps_apart,
)

GRID = [2**k for k in range(7, 13)]  # 128 … 4096


def crossing_curve(d90, *, grid=GRID, slope=0.02, target=0.9):
    """A seed's curve, linear in log2 d, that reaches ``target`` exactly from ``d90`` on."""
    return {d: target + slope * math.log2(d / d90) for d in grid}


# --- the monotone fit -------------------------------------------------------------------------

def test_pava_pools_a_known_violating_sequence_with_its_weights():
    # 0.5 (3 runs) then 0.3 (1 run) violate: pooled to (1.5 + 0.3) / 4 = 0.45 over 4 runs, which
    # still exceeds the next 0.4 (2 runs): pooled again to (1.8 + 0.8) / 6 over 6 runs.
    ds, means, weights = [1, 2, 4, 8, 16], [0.1, 0.5, 0.3, 0.4, 0.9], [1, 3, 1, 2, 1]
    blocks = pooled_blocks(ds, means, weights)
    assert [(a, b, w) for a, b, _, w in blocks] == [(1, 1, 1.0), (2, 8, 6.0), (16, 16, 1.0)]
    assert [v for *_, v, _ in blocks] == pytest.approx([0.1, 2.6 / 6, 0.9])
    np.testing.assert_allclose(monotone_fit(ds, means, weights), [0.1, 2.6 / 6, 2.6 / 6, 2.6 / 6, 0.9])
    # Unweighted, the same points pool to the plain mean 0.4: the weights are used.
    np.testing.assert_allclose(monotone_fit(ds, means, [1] * 5), [0.1, 0.4, 0.4, 0.4, 0.9])


def test_fit_is_returned_in_ascending_d_whatever_the_input_order():
    np.testing.assert_allclose(monotone_fit([8, 1, 4, 2], [0.7, 0.5, 0.6, 0.9], [1, 2, 1, 2]),
                               [0.5, 0.775, 0.775, 0.775])


def test_fit_leaves_a_non_decreasing_curve_as_measured():
    ds, means = [10, 20, 40], [0.6, 0.6, 0.8]
    np.testing.assert_array_equal(monotone_fit(ds, means, [2, 2, 2]), means)
    assert pooled_blocks(ds, means, [2, 2, 2]) == [(10, 10, 0.6, 2.0), (20, 20, 0.6, 2.0), (40, 40, 0.8, 2.0)]


def test_fit_properties_on_random_curves():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        ds = rng.permutation(2 ** np.arange(n))
        means, weights = rng.uniform(0.5, 1.0, n), rng.integers(1, 6, n)
        fit = monotone_fit(ds, means, weights)
        order = np.argsort(ds)
        assert np.all(np.diff(fit) >= -1e-12)  # non-decreasing
        assert np.dot(fit, weights[order]) == pytest.approx(np.dot(means, weights))  # pools, keeps the mass
        target = float(rng.uniform(0.6, 0.95))
        raw = smallest_hit(dict(zip(ds.tolist(), means.tolist(), strict=True)), target)
        robust = robust_d90(ds, means, weights, target)
        assert (robust is None) or (raw is not None and robust >= raw)


def test_fit_refuses_failed_points_and_repeated_ds():
    with pytest.raises(ValueError, match="finite"):
        monotone_fit([1, 2], [0.5, -math.inf], [2, 0])
    with pytest.raises(ValueError, match="positive"):
        monotone_fit([1, 2], [0.5, 0.6], [2, 0])
    with pytest.raises(ValueError, match="once"):
        monotone_fit([2, 2], [0.5, 0.6], [1, 1])
    assert robust_d90([], [], [], 0.9) is None


def test_robust_d90_discounts_a_lone_early_hit():
    # A noisy curve's shape: one d clears the target by 0.005 and every larger d but the last misses.
    ds = [1024, 2048, 4096, 8192, 16384, 32768]
    per_seed = [[0.69, 0.71], [0.79, 0.81], [0.90, 0.91], [0.88, 0.90], [0.89, 0.90], [0.92, 0.94]]
    means = [float(np.mean(s)) for s in per_seed]
    raw = smallest_mean_hit(list(zip(ds, per_seed, strict=True)), 0.9)
    robust = robust_d90(ds, means, [2] * len(ds), 0.9)
    assert raw == 4096
    assert robust == 32768
    assert steps_apart(raw, robust, 0.25) > 1  # the caller warns
    # On a clean curve the two agree.
    assert robust_d90(ds, [0.7, 0.8, 0.91, 0.92, 0.93, 0.94], [2] * 6, 0.9) == 4096
    assert robust_d90([1, 2], [0.9, 0.95], [1, 1], 0.9) == 1  # reaching is ≥, as in the search


# --- smallest hits ----------------------------------------------------------------------------

def test_smallest_mean_hit_is_the_searchs_rule_on_means():
    points = [(512, [0.88, 0.93]), (64, [0.5, 0.6]), (256, [0.91, 0.87]), (1024, [])]
    assert smallest_mean_hit(points, 0.9) == 512  # 256's mean is 0.89
    assert smallest_mean_hit(points, 0.89) == 256
    assert smallest_mean_hit(points, 0.99) is None
    assert smallest_mean_hit([(8, []), (16, [0.95, math.nan])], 0.5) is None  # failed runs miss


def test_per_seed_d90s():
    curves = {0: {64: 0.8, 128: 0.91, 256: 0.95}, 1: {64: 0.92, 128: 0.85, 256: 0.93},
              2: {64: 0.5, 128: 0.6, 256: 0.7}, 3: {64: math.nan, 128: 0.95}}
    assert per_seed_d90s(curves, 0.9) == {0: 128, 1: 64, 2: None, 3: 128}


# --- intervals --------------------------------------------------------------------------------

def test_min_max_interval_for_three_seeds():
    curves = {seed: crossing_curve(d90) for seed, d90 in [(0, 256), (1, 1024), (2, 512)]}
    interval = d90_interval(curves, 0.9)
    assert interval == Interval(256, 1024, "min-max of per-seed d90s", None)
    assert not interval.unbounded


def test_bootstrap_interval_for_five_seeds():
    d90s = {10: 256, 11: 512, 12: 512, 13: 1024, 14: 2048}
    curves = {seed: crossing_curve(d90) for seed, d90 in d90s.items()}
    point = smallest_mean_hit([(d, [curves[s][d] for s in curves]) for d in GRID], 0.9)
    assert point == 1024  # mean log2 d90 is 9.4
    interval = d90_interval(curves, 0.9, n_boot=2000, level=0.9, rng_seed=7)
    assert interval.method == "bootstrap over seeds (percentile, 0.9)"
    assert interval.level == 0.9
    assert min(d90s.values()) <= interval.low <= point <= interval.high <= max(d90s.values())
    assert interval.low < interval.high  # the seeds disagree, and the interval says so
    assert d90_interval(curves, 0.9, n_boot=2000, level=0.9, rng_seed=7) == interval  # deterministic
    assert d90_interval(dict(reversed(list(curves.items()))), 0.9, rng_seed=7) == interval  # order-free
    # A wider level cannot give a narrower interval.
    wide = d90_interval(curves, 0.9, level=0.99, rng_seed=7)
    assert wide.low <= interval.low and interval.high <= wide.high


def test_a_seed_that_never_reaches_the_target_leaves_the_upper_end_unbounded():
    reaching = {seed: crossing_curve(d90) for seed, d90 in [(0, 256), (1, 512)]}
    chance = {d: 0.5 for d in GRID}
    interval = d90_interval({**reaching, 2: chance}, 0.9)
    assert (interval.low, interval.high) == (256, math.inf) and interval.unbounded
    boot = d90_interval({**reaching, 2: crossing_curve(512), 3: crossing_curve(1024), 4: chance}, 0.9)
    assert boot.high == math.inf and boot.unbounded
    assert boot.low <= 1024
    assert max(GRID) not in (interval.high, boot.high)  # unbounded, not "the largest d tried"
    nobody = d90_interval({s: chance for s in range(3)}, 0.9)
    assert (nobody.low, nobody.high) == (math.inf, math.inf)


def test_a_missing_run_is_a_miss_in_the_bootstrap():
    # Every seed reaches the target at 256 except seed 4, which has no run there: a resample that
    # draws seed 4 has no mean at 256, so it cannot hit there.
    curves = {seed: crossing_curve(256) for seed in range(5)}
    del curves[4][256]
    interval = d90_interval(curves, 0.9, rng_seed=0)
    assert (interval.low, interval.high) == (256, 512)


def test_interval_needs_two_seeds_and_a_level():
    assert d90_interval({0: crossing_curve(256)}, 0.9) is None
    with pytest.raises(ValueError):
        d90_interval({0: crossing_curve(256), 1: crossing_curve(512)}, 0.9, level=1.0)


# --- search steps and the standard error flag -------------------------------------------------

def test_steps_apart():
    assert steps_apart(1000, 1250, 0.25) == pytest.approx(1.0)
    assert steps_apart(4096, 1024, 1.0) == pytest.approx(2.0)
    assert steps_apart(1024, 4096, 1.0) == steps_apart(4096, 1024, 1.0)
    assert steps_apart(300, 300, 0.25) == 0.0
    assert steps_apart(None, 300, 0.25) == math.inf
    assert steps_apart(None, None, 0.25) == 0.0
    with pytest.raises(ValueError):
        steps_apart(10, 20, 0.0)


def test_sem_flag():
    # A d90 barely over its target: +0.0009 over the target with std 0.017 over 2 seeds.
    assert clears_by_less_than_sem(0.9009, 0.017, 2, 0.9) is True
    assert clears_by_less_than_sem(0.93, 0.017, 3, 0.9) is False  # 0.03 > 0.017 / √3
    assert clears_by_less_than_sem(0.905, 0.017, 16, 0.9) is False  # 0.005 > 0.017 / 4: more seeds, smaller SEM
    assert clears_by_less_than_sem(0.905, 0.017, 4, 0.9) is True  # 0.005 < 0.0085
    assert clears_by_less_than_sem(0.95, 0.0, 1, 0.9) is None  # one seed: no standard error
    with pytest.raises(ValueError):
        clears_by_less_than_sem(0.95, 0.0, 0, 0.9)
