"""intrinsic.bounds: the compression bound's formula, its monotonicity, and its inputs."""

import math

import pytest

from intrinsic.bounds import compression_bound, compression_gap, min_examples_for_gap


def test_gap_is_the_occam_bound_written_out():
    # d = 1000 coordinates of 16 bits, m = 67,349 (SST-2 train), K = 8 dimensions tried, δ = 0.05
    expected = math.sqrt((1000 * 16 * math.log(2) + math.log(8 / 0.05)) / (2 * 67_349))
    assert compression_gap(1000, 67_349, num_dims_tried=8) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2870, abs=1e-4)


def test_gap_grows_with_d_bits_and_k_and_shrinks_with_m():
    base = compression_gap(500, 10_000)
    assert compression_gap(1000, 10_000) > base
    assert compression_gap(500, 10_000, bits=32) > base
    assert compression_gap(500, 10_000, num_dims_tried=10) > base
    assert compression_gap(500, 40_000) == pytest.approx(base / 2, rel=1e-12)  # ∝ 1/√m


def test_min_examples_inverts_the_gap():
    m = min_examples_for_gap(861, 0.1, num_dims_tried=7)
    assert compression_gap(861, m, num_dims_tried=7) <= 0.1 < compression_gap(861, m - 1, num_dims_tried=7)


def test_bound_adds_the_training_error_and_flags_vacuous_gaps():
    tight = compression_bound(100, 1_000_000, train_error=0.05)
    assert tight.bound == pytest.approx(0.05 + tight.gap) and not tight.vacuous
    assert tight.sqrt_d_over_m == pytest.approx(0.01)
    loose = compression_bound(5000, 2000)
    assert loose.vacuous and loose.bound is None and loose.to_dict()["vacuous"] is True
    assert compression_bound(5000, 2000, train_error=0.1).bound == 1.0  # clipped: an error rate


@pytest.mark.parametrize("kwargs", [dict(d=0, m=10), dict(d=10, m=0), dict(d=10, m=10, delta=1.0),
                                    dict(d=10, m=10, bits=0), dict(d=10, m=10, train_error=1.5)])
def test_bad_inputs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        compression_bound(**kwargs)
