import math

import numpy as np
import pytest

from intrinsic import metrics


def test_accuracy_and_f1_by_hand():
    pred, ref = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    assert metrics.accuracy(pred, ref) == 3 / 5
    # tp = 2, predicted positive = 3, actual positive = 3: F1 = 4/6
    assert metrics.f1(pred, ref) == pytest.approx(2 / 3)
    assert metrics.f1([0, 0], [1, 1]) == 0.0


def test_always_positive_f1_on_mrpc_dev_balance_is_high():
    # MRPC dev: 279 of 408 positive. Predicting "positive" always gives F1 ≈ 0.81.
    ref = [1] * 279 + [0] * 129
    assert metrics.f1([1] * 408, ref) == pytest.approx(2 * 279 / (408 + 279))
    assert metrics.accuracy([1] * 408, ref) == pytest.approx(0.684, abs=5e-4)


def test_matthews_matches_the_formula_and_edges():
    pred, ref = [1, 1, 1, 0, 0, 0, 1], [1, 1, 0, 0, 0, 1, 1]
    tp, tn, fp, fn = 3, 2, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.matthews_corrcoef(pred, ref) == pytest.approx(expected)
    assert metrics.matthews_corrcoef([1, 1, 1], [0, 1, 0]) == 0.0  # constant prediction
    assert metrics.matthews_corrcoef(ref, ref) == pytest.approx(1.0)


def test_correlations_against_numpy_and_ties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    assert metrics.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    # Spearman is Pearson of ranks; monotone transforms do not change it.
    assert metrics.spearman(x, y) == pytest.approx(metrics.spearman(np.exp(x), y ** 3))
    # Ties get their average rank.
    average_ranks = [1, 2.5, 2.5, 4]
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef(average_ranks, [1, 2, 3, 4])[0, 1])
    assert metrics.pearson([2, 2, 2], [1, 2, 3]) == 0.0


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="equal length"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="unknown metrics"):
        metrics.compute(["bleu"], [1], [1])
