"""The quick start: a real d90 measurement that finishes in minutes on a laptop CPU.

    python -m intrinsic.demo                       # the preset below
    python -m intrinsic.demo --said --seeds 0 1    # any measure-did flag overrides the preset

This is ``measure-did`` with an embedded default: the shared ``paraphrase-MiniLM-L3-v2`` on the
first 1,000 SST-2 training sentences, one epoch at 64 tokens, the subspace learning rate 3e-2,
and a coarse search (d from 256, bisection to a factor of 1.5). It prints the table, and writes
the JSON summary, the figure and the run store under ``runs/demo/``; a rerun resumes from the
store. For a measurement worth reporting use ``measure-did`` with its defaults (see the README).
"""

from __future__ import annotations

import sys

from . import cli
from .paths import shared_dir


def preset() -> list[str]:
    """The demo's ``measure-did`` arguments; later arguments override these (argparse: last wins)."""
    shared = shared_dir()
    return [
        "--model", str(shared / "models" / "paraphrase-MiniLM-L3-v2"),
        "--task", "sst2",
        "--data-dir", str(shared / "data" / "glue"),
        "--max-train-samples", "1000",
        "--epochs", "1",
        "--max-length", "64",
        "--lr", "3e-2",
        "--full-lr", "5e-5",
        "--start-d", "256",
        "--max-d", "16384",
        "--resolution", "0.5",
        "--results", "runs/demo/runs.jsonl",
        "--output", "runs/demo/d90.json",
        "--figure", "runs/demo/d90.png",
    ]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    print("intrinsic demo: measure-did " + " ".join(preset() + argv), flush=True)
    return cli.main(preset() + argv)


if __name__ == "__main__":
    sys.exit(main())
