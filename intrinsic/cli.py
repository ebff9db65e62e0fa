"""``measure-did``: measure the intrinsic dimension (d90) of fine-tuning a model on a task.

    measure-did --model roberta-base --task mrpc
    measure-did --model ../shared/models/paraphrase-MiniLM-L3-v2 --task mrpc --data-dir ../shared/data/glue
    measure-did --model runs/mlm/m/step-0 runs/mlm/m/step-6000 EleutherAI/pythia-70m@step3000 --task sst2 --said

Full fine-tuning runs once; then d doubles from --start-d until the dev metric reaches the target,
and bisects between the last miss and the first hit. Every finished run is stored in --results at
once, so rerunning the command resumes where it stopped. Prints a table and writes a JSON summary.
With several models (folders, hub IDs, ID@revision) each is measured in turn against the same
store, and a summary table follows; --output then holds {"results": [...]} and --figure overlays
the curves. Draw more figures from the JSON with plot-did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .projections import LAYOUTS, NORMALIZATIONS, PROJECTIONS
from .store import DEFAULT_STORE
from .tasks import TASKS

FIGURE_FORMATS = (".png", ".svg", ".pdf")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="measure-did", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, nargs="+",
                   help="Hugging Face model ID (roberta-base), ID@revision, or local folder; several measure each")
    p.add_argument("--task", required=True, help=f"GLUE task: {', '.join(TASKS)}")
    p.add_argument("--data-dir", help="folder in the layout of GLUE's download script (default: the hub, nyu-mll/glue)")
    p.add_argument("--projection", default="fastfood", choices=sorted(PROJECTIONS), help="random projection (default fastfood)")
    p.add_argument("--said", action=argparse.BooleanOptionalAction, default=False,
                   help="structure-aware mode: one learned scale per tensor, out of the budget d (default: off)")
    p.add_argument("--layout", default="stacked", choices=LAYOUTS, help="Fastfood block layout (default stacked)")
    p.add_argument("--normalization", default="global", choices=NORMALIZATIONS, help="projection scale (default global)")
    p.add_argument("--dims", type=int, nargs="+", help="evaluate exactly these d instead of searching")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per d (default: 0)")
    p.add_argument("--threshold", type=float, default=0.9, help="fraction of full fine-tuning to reach (default 0.9)")
    p.add_argument("--max-train-samples", type=int, help="use the first N training examples")
    p.add_argument("--epochs", type=float, default=3.0, help="epochs per run (default 3)")
    p.add_argument("--lr", type=float, nargs="+", default=[1e-2, 3e-2, 1e-1],
                   help="subspace learning rates tried per d; the best mean over seeds counts (default 1e-2 3e-2 1e-1)")
    p.add_argument("--full-lr", type=float, nargs="+", default=[2e-5],
                   help="full fine-tuning learning rates; the best mean over seeds is the baseline (default 2e-5)")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example (default 128)")
    p.add_argument("--start-d", type=int, default=128, help="first d of the search (default 128)")
    p.add_argument("--max-d", type=int, help="largest d tried (default: D)")
    p.add_argument("--resolution", type=float, default=0.25, help="stop bisecting at hit/miss ≤ 1 + this (default 0.25)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 … (default: cuda if available)")
    p.add_argument("--output", type=Path, help="write the JSON summary here")
    p.add_argument("--figure", type=Path, help="draw metric against d to this file (.png, .svg or .pdf)")
    p.add_argument("--results", type=Path, default=DEFAULT_STORE,
                   help=f"store of finished runs; reruns skip them (default {DEFAULT_STORE})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _check_writable(path: Path, flag: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write {flag} {path} ({error.strerror}); choose a writable path") from None


def format_table(result) -> str:
    lines = [f"{'d':>10}  {result.metric:>22}  {'lr':>7}  {'≥ target':>8}  {'≥ corrected':>11}  {'√(d/m)':>7}"]
    for p in result.curve:
        value = "failed" if p["n"] == 0 else f"{p['mean']:.4f} ± {p['std']:.4f}"
        lines.append(f"{p['d']:>10,}  {value:>22}  {p['lr'] or '-':>7}  "
                     f"{'yes' if p['mean'] >= result.target else 'no':>8}  "
                     f"{'yes' if p['mean'] >= result.target_chance_corrected else 'no':>11}  {p['bound']:>7.3f}")
    lines += [
        "",
        f"model {result.model}  task {result.task}  D = {result.D:,}  train examples m = {result.train_examples:,}",
        f"full fine-tuning {result.metric} {result.full_metric:.4f}"
        f"{'' if result.full_lr is None else f' (lr {result.full_lr:g})'}   chance (majority class) {result.chance:.4f}",
        f"d90 (≥ {result.threshold:g} × full = {result.target:.4f}): {result.d90}",
        f"chance-corrected d90 (≥ chance + {result.threshold:g}·(full − chance) = {result.target_chance_corrected:.4f}): "
        f"{result.d90_chance_corrected}",
    ]
    bound = result.compression_bound()
    for name, entry in (("d90", bound["d90"]), ("chance-corrected d90", bound["d90_chance_corrected"])):
        if entry is not None:
            lines.append(f"compression bound at {name} = {entry['d']:,}: L0 ≤ L0_train + {entry['gap']:.3f} "
                         f"({entry['bits']}-bit θ_d, δ = {entry['delta']:g}, K = {entry['num_dims_tried']} d tried, "
                         f"m = {entry['m']:,}{'; vacuous' if entry['vacuous'] else ''}; see intrinsic.bounds)")
    lines += [f"note: {note}" for note in result.notes]
    if result.failed_runs:
        lines.append(f"{result.failed_runs} run(s) failed (NaN or diverging loss) and were skipped")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .measure import MeasureConfig
    from .sweep import measure_models

    several = len(args.model) > 1

    try:
        if args.output is not None:
            _check_writable(args.output, "--output")
        if args.figure is not None:
            if args.figure.suffix.lower() not in FIGURE_FORMATS:
                raise ValueError(f"--figure {args.figure}: use one of {', '.join(FIGURE_FORMATS)}")
            _check_writable(args.figure, "--figure")
        config = MeasureConfig(
            model=args.model[0], task=args.task, data_dir=args.data_dir, projection=args.projection,
            said=args.said, layout=args.layout, normalization=args.normalization, dims=args.dims,
            seeds=args.seeds, threshold=args.threshold, lrs=args.lr, full_lr=args.full_lr if len(args.full_lr) > 1 else args.full_lr[0], epochs=args.epochs,
            batch_size=args.batch_size, max_length=args.max_length, max_train_samples=args.max_train_samples,
            start_d=args.start_d, max_d=args.max_d, resolution=args.resolution, device=args.device,
        )
        sweep = measure_models(args.model, config, results=args.results, progress=not args.no_progress,
                               on_result=lambda result: print(format_table(result) + ("\n" if several else "")))
    except OSError as error:
        if isinstance(error, (FileNotFoundError, PermissionError)):
            message = str(error)
        else:
            model = getattr(error, "model", args.model[0])
            message = (f"cannot load model {model!r}: it is not a local model folder and could not be fetched "
                       "from the Hugging Face hub; check the name (and @revision), or pass a folder with config.json")
        print(f"measure-did: error: {message}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as error:
        print(f"measure-did: error: {error}", file=sys.stderr)
        return 2
    if several:
        print(sweep.table())
    if args.output is not None:
        data = sweep.to_dict() if several else sweep.results[0].to_dict()
        args.output.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {args.output}")
    if args.figure is not None:
        from .plots import curves, save_figure

        figure = curves(sweep) if several else sweep.results[0].plot()
        save_figure(figure, args.figure, formats=(args.figure.suffix[1:],))
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
