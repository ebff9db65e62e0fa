"""The compression-based generalisation bound behind the paper's L₀ ≤ L̂₀ + O(√(d/m)).

The paper (Aghajanyan et al. 2021, §5, after Arora et al. 2018) argues: a fine-tuned model that
lives in a d-dimensional subspace is described by d numbers once θ₀, the projection P and the
architecture are fixed, so it generalises like a model with d parameters, whatever D is.
This module makes the O(·) explicit with the finite-hypothesis-class (Occam) bound:

    With probability ≥ 1 − δ over the m training examples, for every θ_d in the class,

        L₀(θ_d) ≤ L̂₀(θ_d) + √( (d · ln r + ln(K / δ)) / (2m) )

    where r = 2^bits is the number of values each coordinate of θ_d may take, and K is the
    number of subspace dimensions the search tried (a union bound over the d's).

Constants and assumptions (each one is needed; none is checked by the code):

1. **Loss.** L₀ is the 0–1 loss (error rate) on the data distribution and L̂₀ the error rate on
   the m training examples. Bounded losses in [0, 1] work the same; the metric must be an error
   rate, not F1 or a correlation.
2. **Independence.** The m training examples are i.i.d. from the distribution L₀ is taken over,
   and θ₀ (pre-training), P (the seed) and the architecture were fixed without looking at them.
   Dev-set model selection (learning rates, the choice of d90 from a dev curve) is not covered
   beyond the union over the K dimensions.
3. **Quantisation.** θ_d is stored with ``bits`` bits per coordinate (default 16, i.e. fp16 or
   bf16; λ in SAID is part of the same d numbers), and the quantised model's training error is
   the L̂₀ in the bound. Rounding a trained float32 θ_d to 16 bits is assumed not to change its
   training predictions; this is not measured.
4. **Hoeffding's constant.** The 1/(2m) is Hoeffding's inequality for [0, 1] losses; the union
   over r^d · K hypotheses gives the logarithm.

The bound says nothing when the gap exceeds 1 (it is *vacuous*): with d in the thousands it needs
m in the tens of thousands of examples. ``gap`` reports the number either way; ``vacuous`` says
which.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

DEFAULT_BITS = 16
DEFAULT_DELTA = 0.05

ASSUMPTIONS = (
    "0-1 loss (error rate); L̂₀ is the training error of the quantised subspace model",
    "training examples i.i.d.; θ₀, P's seed and the architecture fixed before seeing them",
    "θ_d stored with `bits` bits per coordinate without changing training predictions (not measured)",
    "union bound over the K subspace dimensions tried; other dev-set selection is not covered",
)


def compression_gap(d: int, m: int, *, bits: int = DEFAULT_BITS, delta: float = DEFAULT_DELTA,
                    num_dims_tried: int = 1) -> float:
    """√((d ln 2^bits + ln(K/δ)) / (2m)): the generalisation gap of a d-parameter subspace model.

    ``d`` trainable numbers, ``m`` training examples, ``num_dims_tried`` = K. Returns a number that
    may exceed 1 (then the bound is vacuous).
    """
    if d <= 0 or m <= 0:
        raise ValueError(f"d and m must be positive, got d={d}, m={m}")
    if bits <= 0 or not 0 < delta < 1 or num_dims_tried < 1:
        raise ValueError(f"need bits > 0, 0 < delta < 1 and num_dims_tried ≥ 1; got {bits}, {delta}, {num_dims_tried}")
    return math.sqrt((d * bits * math.log(2) + math.log(num_dims_tried / delta)) / (2 * m))


@dataclass(frozen=True)
class CompressionBound:
    """The bound for one d: L₀ ≤ ``train_error`` + ``gap`` (``bound`` is None when L̂₀ is unknown)."""

    d: int
    m: int
    bits: int
    delta: float
    num_dims_tried: int
    gap: float
    sqrt_d_over_m: float  # the paper's O(√(d/m)) term without constants
    train_error: float | None = None

    @property
    def bound(self) -> float | None:
        return None if self.train_error is None else min(1.0, self.train_error + self.gap)

    @property
    def vacuous(self) -> bool:
        """True when the gap alone reaches 1: the bound then excludes nothing."""
        return self.gap >= 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "bound": self.bound, "vacuous": self.vacuous}


def compression_bound(d: int, m: int, *, train_error: float | None = None, bits: int = DEFAULT_BITS,
                      delta: float = DEFAULT_DELTA, num_dims_tried: int = 1) -> CompressionBound:
    """:class:`CompressionBound` for ``d`` trainable numbers and ``m`` training examples (see module doc)."""
    if train_error is not None and not 0 <= train_error <= 1:
        raise ValueError(f"train_error is an error rate in [0, 1], got {train_error}")
    gap = compression_gap(d, m, bits=bits, delta=delta, num_dims_tried=num_dims_tried)
    return CompressionBound(d=d, m=m, bits=bits, delta=delta, num_dims_tried=num_dims_tried, gap=gap,
                            sqrt_d_over_m=math.sqrt(d / m), train_error=train_error)


def min_examples_for_gap(d: int, gap: float, *, bits: int = DEFAULT_BITS, delta: float = DEFAULT_DELTA,
                         num_dims_tried: int = 1) -> int:
    """The smallest m for which :func:`compression_gap` is ≤ ``gap`` (e.g. 0.1)."""
    if not 0 < gap:
        raise ValueError(f"gap must be positive, got {gap}")
    return math.ceil((d * bits * math.log(2) + math.log(num_dims_tried / delta)) / (2 * gap * gap))
