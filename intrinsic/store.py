"""Append-only JSONL store of finished runs, keyed by a hash of each run's full configuration.

Several processes may share one store (say, two parts of a study running side by side): a lookup
that misses re-reads the file if it has grown, so a run another process finished is not repeated.

Every run is one self-contained record ``{"key", "config", "result", "finished_at", "versions"}``
written with one ``write`` and an ``fsync`` as soon as the run ends. Re-running a sweep skips
every configuration already in the store, and ``kill -9`` loses at most the run in flight: a
record cut short by the kill is an unparsable last line, which is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

DEFAULT_STORE = Path("runs") / "runs.jsonl"  # under runs/, which git ignores


def config_key(config: dict) -> str:
    """A stable 16-hex-digit hash of a JSON-serialisable configuration."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    import numpy
    import torch
    import transformers

    from . import __version__

    return {"intrinsic": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__}


class ResultStore:
    """Finished runs in one JSONL file (see module doc)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8"):
                pass
        except OSError as error:
            raise PermissionError(
                f"cannot write the results store {self.path} ({error.strerror}); choose a writable path"
            ) from None
        self._records = self._read()

    def _read(self) -> dict[str, dict]:
        records = {}
        text = self.path.read_text(encoding="utf-8")
        self._bytes_read = len(text.encode("utf-8"))
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number != len(lines):
                    warnings.warn(f"{self.path}:{number}: unreadable record skipped", RuntimeWarning, stacklevel=3)
                continue  # the last line: a write cut short by a kill
            records[record["key"]] = record
        return records

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, config: dict) -> bool:
        return self.get(config) is not None

    def record(self, config: dict) -> dict | None:
        """The whole stored record of ``config`` (the latest, if it was stored more than once), or None."""
        key = config_key(config)
        if key not in self._records and self.path.stat().st_size != self._bytes_read:
            self._records = self._read()  # another process may have finished it meanwhile
        return self._records.get(key)

    def get(self, config: dict) -> dict | None:
        """The stored result of ``config``, or None if it never finished."""
        record = self.record(config)
        return None if record is None else record["result"]

    def put(self, config: dict, result: dict, **extra) -> dict:
        """Append the finished run now (one write, flushed and fsynced); ``extra`` fields go into the record.

        A record with the key of an earlier one supersedes it on reading."""
        record = {"key": config_key(config), "config": config, "result": result, **extra,
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": library_versions()}
        line = json.dumps(record, default=str) + "\n"
        # A kill can cut the previous line short: start on a fresh line so this one stays whole.
        with open(self.path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._records[record["key"]] = record
        return record

    def records(self) -> list[dict]:
        return list(self._records.values())
