"""GLUE metrics on plain sequences: accuracy, F1, Matthews correlation, Pearson, Spearman.

Each takes predictions and references of equal length and returns a float; constant inputs
where a correlation is undefined give 0.0 (the score of a predictor that learned nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(predictions: Sequence, references: Sequence) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(predictions), np.asarray(references)
    if p.shape != r.shape or p.ndim != 1 or p.size == 0:
        raise ValueError(f"need two non-empty 1-D sequences of equal length, got {p.shape} and {r.shape}")
    return p, r


def accuracy(predictions, references) -> float:
    p, r = _pair(predictions, references)
    return float((p == r).mean())


def f1(predictions, references, positive: int = 1) -> float:
    """F1 of the positive class (GLUE's F1 for MRPC and QQP)."""
    p, r = _pair(predictions, references)
    tp = float(((p == positive) & (r == positive)).sum())
    predicted, actual = float((p == positive).sum()), float((r == positive).sum())
    return 0.0 if tp == 0 else 2 * tp / (predicted + actual)


def matthews_corrcoef(predictions, references) -> float:
    """Matthews correlation for binary labels (GLUE's CoLA metric)."""
    p, r = _pair(predictions, references)
    p, r = p.astype(bool), r.astype(bool)
    tp, tn = float((p & r).sum()), float((~p & ~r).sum())
    fp, fn = float((p & ~r).sum()), float((~p & r).sum())
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if denominator == 0 else float((tp * tn - fp * fn) / denominator)


def pearson(predictions, references) -> float:
    p, r = _pair(predictions, references)
    p, r = p.astype(np.float64) - p.mean(), r.astype(np.float64) - r.mean()
    denominator = np.sqrt((p * p).sum() * (r * r).sum())
    return 0.0 if denominator == 0 else float((p * r).sum() / denominator)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1…n with ties given their average rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    counts = np.bincount(inverse)
    return (sums / counts)[inverse]


def spearman(predictions, references) -> float:
    p, r = _pair(predictions, references)
    return pearson(_ranks(p.astype(np.float64)), _ranks(r.astype(np.float64)))


METRICS = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_correlation": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def compute(names: Sequence[str], predictions, references) -> dict[str, float]:
    """{name: value} for each metric in ``names``."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(METRICS)}")
    return {name: METRICS[name](predictions, references) for name in names}
