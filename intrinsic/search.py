"""The d90 search: double d on a log grid, then bisect between the last miss and the first hit.

``find_smallest_d(score, target, start, max_d)`` (or its generator form, :func:`search_steps`,
which yields the d it needs and is sent their scores) assumes the score grows with d (up to noise)
and calls ``score(d)`` for a logarithmic number of d; the caller caches scores, so searches for
several targets (the paper's d90 and the chance-corrected one) share their evaluations.

Real curves are noisy and not monotone, so the search only decides *which* d to measure; the
reported d90 is :func:`smallest_hit` over everything measured: the smallest measured d that
reaches the target, also when the other target's search measured it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator


def smallest_hit(scores: dict[int, float], target: float) -> int | None:
    """The smallest d among the measured ``scores`` ({d: score}) with score ≥ target, or None."""
    return min((d for d, value in scores.items() if value >= target), default=None)


def paper_target(full: float, threshold: float = 0.9) -> float:
    """The paper's d90 target: threshold × the full fine-tuning metric."""
    return threshold * full


def chance_corrected_target(full: float, chance: float, threshold: float = 0.9) -> float:
    """chance + threshold × (full − chance): the target that ignores what the class prior gives."""
    return chance + threshold * (full - chance)


def find_smallest_d(score: Callable[[int], float], target: float, start: int, max_d: int,
                    resolution: float = 0.25) -> int | None:
    """The smallest d in [1, max_d] whose ``score(d) ≥ target``, to a relative ``resolution``.

    Doubles from ``start`` until a hit (halves, if ``start`` already hits, until a miss), then
    bisects at geometric midpoints until first hit / last miss ≤ 1 + ``resolution``.
    Returns None when even ``max_d`` misses. The steps are :func:`search_steps`'s.
    """
    steps = search_steps(target, start, max_d, resolution)
    try:
        d = next(steps)
        while True:
            d = steps.send(score(d))
    except StopIteration as stop:
        return stop.value


def searches_together(targets: list[float], start: int, max_d: int,
                      resolution: float = 0.25) -> Generator[list[int], Callable[[int], float], list[int | None]]:
    """One :func:`search_steps` per target, stepping together: it yields the sorted d's that the
    searches still running ask for in this round, is sent a function scoring any of them, and
    returns each target's answer.

    A search's path depends only on the scores of the d's it asks for, so each finds what it would
    find alone, and the d's asked for are those that running the searches one after another (with
    scores cached) would measure; a driver can measure a whole round at once.
    """
    searches = [search_steps(target, start, max_d, resolution) for target in targets]
    answers: list[int | None] = [None] * len(searches)
    asking = {i: next(search) for i, search in enumerate(searches)}
    while asking:
        score = yield sorted(set(asking.values()))
        for i, d in list(asking.items()):
            try:
                asking[i] = searches[i].send(score(d))
            except StopIteration as stop:
                answers[i] = stop.value
                del asking[i]
    return answers


def search_steps(target: float, start: int, max_d: int,
                 resolution: float = 0.25) -> Generator[int, float, int | None]:
    """:func:`find_smallest_d` as a generator: it yields the next d to score, is sent that d's
    score, and returns the answer (``StopIteration.value``).

    Nothing but the scores sent decides what it yields, so replaying it with stored scores gives
    the same d's and answer: a driver can score the d it asks for however it likes (in parallel
    across seeds and learning rates, from a store, on other machines) and get the serial answer.
    """
    if start < 1 or max_d < start:
        raise ValueError(f"need 1 ≤ start ≤ max_d, got start={start}, max_d={max_d}")
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if (yield start) >= target:
        hit, miss = start, None
        while hit > 1:
            lower = max(1, hit // 2)
            if (yield lower) >= target:
                hit = lower
            else:
                miss = lower
                break
        if miss is None:
            return hit
    else:
        miss, hit = start, None
        while hit is None:
            if miss >= max_d:
                return None
            upper = min(max_d, miss * 2)
            if (yield upper) >= target:
                hit = upper
            else:
                miss = upper
    while hit / miss > 1 + resolution and hit - miss > 1:
        middle = round(math.sqrt(hit * miss))
        middle = min(max(middle, miss + 1), hit - 1)
        if (yield middle) >= target:
            hit = middle
        else:
            miss = middle
    return hit
