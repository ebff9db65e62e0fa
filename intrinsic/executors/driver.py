"""The driver: runs measurement plans on an executor, and is the only writer of the run store.

A plan (:data:`intrinsic.measure.Plan`) yields the runs it needs next and is sent their results.
For each yielded run the driver reads the store; the runs it lacks go to the executor, each
store key at most once at a time (two plans needing the same run share it), and each result is
stored the moment it comes back, so a killed driver loses only the runs in flight. A run the
executor lost (:class:`~intrinsic.executors.base.Lost`) reaches its plan as a failed run and is
not stored: a rerun tries it again.

With a parallel executor every plan advances at once: the runs of all plans' current rounds are in
flight together, and a plan that raises (say, full fine-tuning failed at every learning rate)
stops alone: the others finish, then its error is raised. With the serial executor the plans run
one after another, as a loop would, and an error stops the loop.
"""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

from ..runner import Runner
from ..store import config_key
from .base import Finished, Lost


def drive(plans: list[tuple[Runner, object]], executor, *, progress: bool = True,
          on_result: Callable | None = None) -> list:
    """Run every ``(runner, plan)`` to its end on ``executor``; returns the plans' return values in
    order, calling ``on_result(value)`` as each finishes."""
    results: list = [None] * len(plans)
    rounds: dict[int, tuple[list, list, int]] = {}  # plan → (its round's requests, results so far, missing)
    in_flight: dict[object, tuple[str, list[tuple[int, int]]]] = {}  # handle → (store key, waiting (plan, slot))
    by_key: dict[str, object] = {}  # store key → handle in flight
    errors: list[BaseException] = []  # plans that raised (parallel executors: the others go on)
    bar = tqdm(desc="runs", unit="run", total=0, disable=not (progress and executor.parallel), leave=False)

    def advance(i: int, sent: list | None) -> None:
        """Send plan ``i`` its round's results (None: start it) until it asks for runs not stored."""
        runner, plan = plans[i]
        while True:
            try:
                requests = next(plan) if sent is None else plan.send(sent)
            except StopIteration as stop:
                results[i] = stop.value
                if on_result is not None:
                    on_result(stop.value)
                return
            except Exception as error:
                if not executor.parallel:
                    raise
                errors.append(error)
                return
            sent = [runner.stored(request) for request in requests]
            missing = [slot for slot, result in enumerate(sent) if result is None]
            if not missing:
                continue
            for slot in missing:
                key = config_key(runner.config_of(requests[slot]))
                handle = by_key.get(key)
                if handle is None:
                    handle = executor.submit(runner, requests[slot])
                    by_key[key] = handle
                    in_flight[handle] = (key, [])
                    bar.total += 1
                    bar.refresh()
                in_flight[handle][1].append((i, slot))
            rounds[i] = (requests, sent, len(missing))
            return

    def finish() -> None:
        while in_flight:
            handle, outcome = executor.next_finished()
            key, waiting = in_flight.pop(handle)
            del by_key[key]
            bar.update()
            stored = False
            for i, slot in waiting:
                runner = plans[i][0]
                requests, sent, missing = rounds[i]
                if isinstance(outcome, Finished):
                    if not stored:
                        runner.keep(requests[slot], outcome.result, **outcome.extra)
                        stored = True
                    sent[slot] = outcome.result
                else:
                    assert isinstance(outcome, Lost)
                    sent[slot] = {"status": "failed", "error": outcome.error, "lost": True}
                rounds[i] = (requests, sent, missing - 1)
                if missing == 1:
                    del rounds[i]
                    advance(i, sent)

    try:
        if executor.parallel:
            for i in range(len(plans)):
                advance(i, None)
            finish()
        else:
            for i in range(len(plans)):
                advance(i, None)
                finish()
    except BaseException:
        cancel = getattr(executor, "cancel", None)
        if cancel is not None:
            cancel()
        raise
    finally:
        bar.close()
    if errors:
        raise errors[0]
    return results
