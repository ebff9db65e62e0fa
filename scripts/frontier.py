"""The PEFT frontier measured here, one command per model (see docs/frontier.md).

    python scripts/frontier.py minilm     # paraphrase-MiniLM-L3-v2 on SST-2
    python scripts/frontier.py xs         # the tiny pre-trained xs checkpoint at its last step
    python scripts/frontier.py figures    # the figures, from the JSON files the parts wrote
    python scripts/frontier.py table      # each part's table in Markdown (README, docs/frontier.md)

Each part is ``measure_frontier`` over every registered method, head frozen (the default: with a
trainable head the 770-parameter classifier alone reaches both targets on MiniLM-L3), with its
own run store ``results/frontier/<part>-sst2.jsonl`` (a killed part resumes where it stopped) and
its summary ``figures/frontier/<part>-sst2.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from intrinsic import MeasureConfig  # noqa: E402
from intrinsic.executors.names import EXECUTORS  # noqa: E402
from intrinsic.paths import shared_path  # noqa: E402

RESULTS = ROOT / "results" / "frontier"
FIGURES = ROOT / "figures" / "frontier"

# Cheapest and most telling first, so that a part cut short has the comparisons that matter.
METHODS = ["said", "lora", "bitfit", "bitfit-subset", "ia3", "vera", "unilora", "fourierft", "prompt-tuning",
           "p-tuning", "prefix-tuning", "pfeiffer", "houlsby", "hiwi", "pafi", "masking", "diff-pruning", "did"]
# Caps where a knob's own limit is far beyond what a 2-core CPU can search (k counts entries), or
# where prompts and prefixes must fit the position table (512) beside 64 tokens.
MAX_KNOBS = {"pafi": 65536, "diff-pruning": 65536, "prompt-tuning": 256, "p-tuning": 256, "prefix-tuning": 256,
             "houlsby": 384, "pfeiffer": 384, "hiwi": 384}
# The MiniLM protocol settings of scripts/study.py (2,000 sentences, one epoch, 64 tokens, a
# 500-sentence validation split, full fine-tuning at 5e-5 and 1e-4) with two seeds, and a search
# that doubles without bisecting (resolution 1.0): a method's parameters-to-90 % is known to a
# factor of two, which is what a log-axis comparison across methods needs.
MINILM = dict(max_train_samples=2000, epochs=1.0, max_length=64, seeds=[0, 1], full_lr=[5e-5, 1e-4],
              selection="validation", validation_size=500, resolution=1.0, start_d=128)
# xs at its last step with the protocol-trajectory settings (8,000 sentences, three epochs): with
# one epoch the tiny models do not train.
XS = dict(MINILM, max_train_samples=8000, epochs=3.0, full_lr=[1e-4, 1e-3])
# Each method's default grid comes from settings of several epochs; one epoch of 63 steps favours
# larger rates (LoRA chose 1e-3, the top of 1e-4 and 1e-3, at every r). A method whose every point
# chose an end of its grid (points whose rates tied aside) is measured again with one more rate
# beyond it, up to twice, the same rule for every method, with rates still chosen on the validation split.
WIDEN = 2


def part_settings(part: str, mlm: Path) -> tuple[str, dict]:
    if part == "minilm":
        return str(shared_path("models", "paraphrase-MiniLM-L3-v2")), MINILM
    if part == "xs":
        folder = mlm / "xs" / "step-6000"
        if not (folder / "config.json").is_file():
            raise SystemExit(f"missing {folder}: run python scripts/pretrain_mlm.py --sizes xs first")
        return str(folder), XS
    raise SystemExit(f"unknown part {part!r}")


def measure(part: str, mlm: Path, methods: list[str], progress: bool, executor: str = "serial") -> None:
    from intrinsic.frontier import measure_frontier

    model, settings = part_settings(part, mlm)
    config = replace(MeasureConfig(model=model, task="sst2", data_dir=str(shared_path("data", "glue"))), **settings,
                     executor=executor)
    frontier = measure_frontier(methods, config, head="frozen", max_knobs=MAX_KNOBS, widen=WIDEN,
                                results=RESULTS / f"{part}-sst2.jsonl", progress=progress,
                                on_result=lambda r: print(f"{r.method}: {r.describe('d90')} / "
                                                          f"{r.describe('corrected')}", flush=True))
    FIGURES.mkdir(parents=True, exist_ok=True)
    frontier.save(FIGURES / f"{part}-sst2.json")
    print(frontier.table("d90"), frontier.table("corrected"), sep="\n\n")


def figures() -> None:
    from intrinsic.frontier import Frontier
    from intrinsic.plots import frontier, save_figure, use_file_backend

    use_file_backend()
    for path in sorted(FIGURES.glob("*.json")):
        result = Frontier.load(path)
        for kind in ("d90", "corrected"):
            save_figure(frontier(result, kind=kind), FIGURES / f"{path.stem}-{kind}")
        print("drew", path.stem)


def _cell(frontier, row: dict, kind: str) -> list[str]:
    """Knob at the target with its interval over seeds, trainable and stored counts (or why none)."""
    result = next(r for r in frontier.results if r.method == row["method"])
    if row["trainable"] is None:
        status = result.outcome(kind)[1]
        if row["knob"] is None and status == "above":
            return ["not reached", "", ""]
        return [row["described"], "", ""]
    knob = "fixed size" if row["knob"] is None else f"{row['knob_at_90']:,} {result.interval(kind)}"
    return [knob, f"{row['trainable']:,}", f"{row['stored']:,}"]


def markdown(frontier) -> str:
    """The frontier as one Markdown table, sorted by trainable parameters at the paper's target,
    then at the chance-corrected one; the baseline, targets and references above it."""
    first = frontier.first
    full = first.full_scores or [first.full_metric]
    refs = "; ".join(f"{name} {ref['mean']:.3f} ± {ref['std']:.3f}" for name, ref in frontier.references.items())
    lines = [f"Full fine-tuning {first.full_metric:.3f} (seeds {', '.join(f'{x:.3f}' for x in full)}), "
             f"chance {first.chance:.3f}; targets {first.target:.3f} (paper) and "
             f"{first.target_chance_corrected:.3f} (chance-corrected); {refs}; head {frontier.head}.", "",
             "| method | knob | paper target: knob [interval] | trainable | stored "
             "| corrected target: knob [interval] | trainable | stored |",
             "|---|---|---|---|---|---|---|---|"]
    corrected = {row["method"]: row for row in frontier.rows("corrected")}
    order = sorted(frontier.rows("d90"), key=lambda row: (
        row["trainable"] is None, row["trainable"] or 0,
        corrected[row["method"]]["trainable"] is None, corrected[row["method"]]["trainable"] or 0))
    for row in order:
        cells = [f"`{row['method']}`", row["knob"] or "–", *_cell(frontier, row, "d90"),
                 *_cell(frontier, corrected[row["method"]], "corrected")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables() -> None:
    from intrinsic.frontier import Frontier

    for path in sorted(FIGURES.glob("*.json")):
        print(f"### {path.stem}\n\n{markdown(Frontier.load(path))}\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["minilm", "xs", "figures", "table"])
    p.add_argument("--methods", nargs="+", default=METHODS, help="default: every registered method")
    p.add_argument("--mlm", type=Path, default=ROOT / "runs" / "mlm", help="pretrain_mlm.py's --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--executor", default="serial", choices=EXECUTORS,
                   help="ray: one run per core, every method's plan side by side (docs/cluster.md)")
    args = p.parse_args(argv)
    if args.part == "figures":
        figures()
    elif args.part == "table":
        tables()
    else:
        measure(args.part, args.mlm, args.methods, not args.no_progress, args.executor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
