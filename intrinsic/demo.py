"""The quick start: a real d90 measurement, both targets, in under 3 minutes on a 2-core CPU.

    python -m intrinsic.demo                       # the preset below
    python -m intrinsic.demo --said --seeds 0 1    # any measure-did flag overrides the preset

The model and task are paraphrase-MiniLM-L3-v2 (D = 17.4 M) and GLUE SST-2. They come from the
local data folder when it holds both (``$INTRINSIC_SHARED_DIR``, else ``../shared``; see
``intrinsic.paths``), and otherwise from the Hugging Face hub by ID
(``sentence-transformers/paraphrase-MiniLM-L3-v2``, ``nyu-mll/glue`` config ``sst2``) through
the same loaders as any hub ID. One line says which; with neither, one line names both fixes.

The preset is ``measure-did`` on 1,000 training sentences (the first of those not held out for
selection) for one epoch (32 steps of 32) at 64 tokens (no sentence is cut): full fine-tuning at
lr 5e-5, then Fastfood DID at lr 3e-2 from d = 2,048, bisecting to a factor of 1.5: four to six
runs of about 22 s (each also scores the 500 held-out sentences). Against
``measure-did``'s defaults it trades: 1.5 % of the training set and one epoch instead of three
(d90 depends on both, so this is the d90 of this small problem, not of SST-2); one subspace
learning rate instead of the best of 1e-2, 3e-2 and 1e-1 at each d; one seed (no error bars,
and neighbouring d can swap order by noise); a search that starts at 2,048 (this d90 is above
it; a model whose d90 is lower costs one more run per halving) and stops at a factor of 1.5
instead of 1.25. It writes the JSON summary, the figure and the run store under ``runs/demo/``;
a rerun resumes from the store. For a measurement worth reporting, use ``measure-did`` with
its defaults.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from . import cli
from .paths import SHARED_ENV_VAR, shared_dir

HUB_MODEL = "sentence-transformers/paraphrase-MiniLM-L3-v2"
HUB_DATASET = "nyu-mll/glue"  # the task registry's hub source for sst2
TASK = "sst2"
LOCAL_MODEL = Path("models") / "paraphrase-MiniLM-L3-v2"
LOCAL_GLUE = Path("data") / "glue"

SETTINGS = [
    "--max-train-samples", "1000",
    "--epochs", "1",
    "--max-length", "64",
    "--lr", "3e-2",
    "--full-lr", "5e-5",
    "--start-d", "2048",
    "--max-d", "16384",
    "--resolution", "0.5",
    "--results", "runs/demo/runs.jsonl",
    "--output", "runs/demo/d90.json",
    "--figure", "runs/demo/d90.png",
]


@dataclass(frozen=True)
class Source:
    """Where the demo's model and data come from: ``model`` (folder or hub ID), ``data_dir``
    (a GLUE folder, or None for the hub) and ``message``, the one line that says so."""

    model: str
    data_dir: str | None
    message: str

    @property
    def is_hub(self) -> bool:
        return self.data_dir is None


def find_source(folder: Path | None = None) -> Source:
    """The local data folder (default :func:`~intrinsic.paths.shared_dir`) when it holds the model
    and SST-2, else the hub."""
    folder = shared_dir() if folder is None else folder
    model, glue = folder / LOCAL_MODEL, folder / LOCAL_GLUE
    if (model / "config.json").is_file() and (glue / "SST-2" / "train.tsv").is_file():
        message = f"intrinsic demo: local data folder {folder} ({LOCAL_MODEL}, {LOCAL_GLUE}/SST-2)"
        return Source(str(model), str(glue), message)
    return Source(HUB_MODEL, None, f"intrinsic demo: no model and SST-2 in {folder} (the local data folder, "
                                   f"${SHARED_ENV_VAR}); from the Hugging Face hub: {HUB_MODEL}, {HUB_DATASET} {TASK}")


def preset(source: Source | None = None) -> list[str]:
    """The demo's ``measure-did`` arguments; later arguments override these (argparse: last wins)."""
    source = find_source() if source is None else source
    data = [] if source.data_dir is None else ["--data-dir", source.data_dir]
    return ["--model", source.model, "--task", TASK, *data, *SETTINGS]


def hub_problem(args) -> str | None:
    """Load what the demo takes from the hub (the parsed ``args`` say which) with the normal
    loaders; None when they load (the hub or its local cache served them), else the reason."""
    import huggingface_hub  # noqa: F401  (configures its logger on import: quiet it after)

    from .models import load_tokenizer
    from .tasks import load_task

    quiet = logging.getLogger("huggingface_hub")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # not one retry warning per attempt
    try:
        if args.task == TASK and args.data_dir is None:
            load_task(TASK)
        if args.model == [HUB_MODEL]:
            load_tokenizer(HUB_MODEL)
    except OSError as error:  # ConnectionError and the hub's errors for files it cannot fetch
        return " ".join(str(error).split()) or type(error).__name__
    finally:
        quiet.setLevel(level)
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    source = find_source()
    print(source.message, flush=True)
    arguments = preset(source) + argv
    if source.is_hub:
        problem = hub_problem(cli.build_parser().parse_args(arguments))
        if problem is not None:
            print(f"intrinsic demo: error: the Hugging Face hub could not serve them ({problem}); either put a data "
                  f"folder with {LOCAL_MODEL} and {LOCAL_GLUE}/SST-2 at {shared_dir()} (or point ${SHARED_ENV_VAR} "
                  "at one), or connect to the Hugging Face hub", file=sys.stderr)
            return 2
    print("intrinsic demo: measure-did " + " ".join(arguments), flush=True)
    return cli.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
