"""``plot-did``: draw figures from the JSON files ``measure-did --output`` writes.

    plot-did step  trajectory.json                       # runs/figures/d90-vs-step.png and .svg
    plot-did size  sizes.json                            # runs/figures/d90-vs-size.png and .svg
    plot-did curves sizes.json minilm.json --output figures/both-curves --normalized

Each writes OUTPUT.png and OUTPUT.svg; OUTPUT defaults to runs/figures/<figure name> under the
current folder (runs/ is ignored by git; pass --output to write elsewhere). An input may hold one
result or several ({"results": [...]}).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import plots
from .results import load_results

FIGURES = Path("runs") / "figures"
DEFAULT_OUTPUT = {"step": FIGURES / "d90-vs-step", "size": FIGURES / "d90-vs-size",
                  "curves": FIGURES / "curves"}  # one per figure


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plot-did", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=sorted(DEFAULT_OUTPUT),
                   help="step: d90 against pre-training step; size: d90 against parameters (log-log, fitted "
                        "slope); curves: metric against d, overlaid")
    p.add_argument("inputs", nargs="+", type=Path, help="JSON files written by measure-did --output")
    p.add_argument("--output", type=Path,
                   help=f"file stem; writes STEM.png and STEM.svg (default {FIGURES}/d90-vs-step, "
                        "d90-vs-size or curves)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--kind", choices=["both", "d90", "corrected"], default="both",
                   help="step/size: which d90 to draw (default both)")
    p.add_argument("--params", choices=["non_embedding_params", "params"], default="non_embedding_params",
                   help="size: the x axis (default non-embedding parameters)")
    p.add_argument("--normalized", action="store_true", help="curves: (metric − chance) / (full − chance)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    plots.use_file_backend()
    try:
        missing = [str(path) for path in args.inputs if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"no such file: {', '.join(missing)}; write it with measure-did --output")
        results = load_results(*args.inputs)
        kinds = ("d90", "corrected") if args.kind == "both" else (args.kind,)
        if args.figure == "step":
            fig = plots.d90_vs_step(results, kinds=kinds, title=args.title)
        elif args.figure == "size":
            fig = plots.d90_vs_params(results, kinds=kinds, params=args.params, title=args.title)
            for kind, fit in fig.fits.items():
                print(f"{kind}: " + ("fewer than two defined points, no fit" if fit is None
                                     else f"d90 ∝ N^{fit[0]:.3f}"))
        else:
            fig = plots.curves(results, normalized=args.normalized, title=args.title)
        for path in plots.save_figure(fig, args.output or DEFAULT_OUTPUT[args.figure]):
            print(f"wrote {path}")
    except (OSError, ValueError, KeyError) as error:
        print(f"plot-did: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
