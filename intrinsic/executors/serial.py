"""The serial executor: every run trained here, one after another, in the order submitted."""

from __future__ import annotations

from collections import deque

from ..runner import Runner, RunRequest
from .base import Finished


class SerialExecutor:
    """Runs each submitted run in this process when the driver asks for the next finished one.

    An exception in training propagates, as from a plain loop."""

    parallel = False

    def __init__(self):
        self._queue: deque = deque()
        self._next_handle = 0

    def submit(self, runner: Runner, request: RunRequest) -> int:
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        self._queue.append((handle, runner, request))
        return handle

    def next_finished(self) -> tuple[int, Finished]:
        handle, runner, request = self._queue.popleft()
        return handle, Finished(runner.execute(request))
