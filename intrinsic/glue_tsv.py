"""Read GLUE task files in the layout of GLUE's own download script (``<TASK>/train.tsv``)."""

from __future__ import annotations

import csv
from pathlib import Path


def read_mrpc(path: str | Path, limit: int | None = None) -> list[tuple[str, str, int]]:
    """(sentence1, sentence2, label) rows of an MRPC TSV.

    The file has a header row that starts with a UTF-8 byte-order mark and sentences with
    unbalanced double quotes, so it is read as ``utf-8-sig`` with quoting disabled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; point --data-dir at a GLUE folder holding MRPC/train.tsv")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header[:1] != ["Quality"]:
            raise ValueError(f"{path} is not an MRPC TSV: header {header[:3]}, expected 'Quality' first")
        rows = [(r[3], r[4], int(r[0])) for r in reader]
    return rows[:limit]
