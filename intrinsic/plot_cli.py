"""``plot-did``: draw figures from the JSON files ``measure-did --output`` writes.

    plot-did step  trajectory.json                       # runs/figures/d90-vs-step.png and .svg
    plot-did size  sizes.json                            # runs/figures/d90-vs-size.png and .svg
    plot-did curves sizes.json minilm.json --output figures/both-curves --normalized
    plot-did frontier frontier.json --kind corrected       # runs/figures/frontier.png and .svg

Each writes OUTPUT.png and OUTPUT.svg; OUTPUT defaults to runs/figures/<figure name> under the
current folder (runs/ is ignored by git; pass --output to write elsewhere). An input may hold one
result or several ({"results": [...]}); frontier takes one file written by measure-frontier --output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import plots
from .results import load_results

FIGURES = Path("runs") / "figures"
DEFAULT_OUTPUT = {"step": FIGURES / "d90-vs-step", "size": FIGURES / "d90-vs-size",
                  "curves": FIGURES / "curves", "frontier": FIGURES / "frontier"}  # one per figure


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plot-did", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=sorted(DEFAULT_OUTPUT),
                   help="step: d90 against pre-training step; size: d90 against parameters (log-log, fitted "
                        "slope); curves: metric against d, overlaid; frontier: every method's metric against "
                        "trainable parameters")
    p.add_argument("inputs", nargs="+", type=Path,
                   help="JSON files written by measure-did --output (frontier: one written by measure-frontier)")
    p.add_argument("--output", type=Path,
                   help=f"file stem; writes STEM.png and STEM.svg (default {FIGURES}/d90-vs-step, "
                        "d90-vs-size, curves or frontier)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--kind", choices=["both", "d90", "corrected"],
                   help="step/size: which d90 to draw (default both); frontier: which target, d90 (the paper's, "
                        "the default) or corrected")
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
            writer = "measure-frontier" if args.figure == "frontier" else "measure-did"
            raise FileNotFoundError(f"no such file: {', '.join(missing)}; write it with {writer} --output")
        if args.figure == "frontier":
            if args.kind == "both":
                raise ValueError("frontier draws one target: --kind d90 (the default) or --kind corrected")
            fig = plots.frontier(load_frontier(args.inputs), kind=args.kind or "d90", title=args.title)
        else:
            fig = _d90_figure(args, load_results(*args.inputs))
        for path in plots.save_figure(fig, args.output or DEFAULT_OUTPUT[args.figure]):
            print(f"wrote {path}")
    except (OSError, ValueError, KeyError) as error:
        print(f"plot-did: error: {error}", file=sys.stderr)
        return 2
    return 0


def _d90_figure(args, results):
    """The figure of d90 results that ``args.figure`` names (step, size or curves)."""
    kinds = ("d90", "corrected") if args.kind in (None, "both") else (args.kind,)
    if args.figure == "step":
        return plots.d90_vs_step(results, kinds=kinds, title=args.title)
    if args.figure == "size":
        fig = plots.d90_vs_params(results, kinds=kinds, params=args.params, title=args.title)
        for kind, fit in fig.fits.items():
            print(f"{kind}: " + ("fewer than two defined points, no fit" if fit is None else f"d90 ∝ N^{fit[0]:.3f}"))
        return fig
    return plots.curves(results, normalized=args.normalized, title=args.title)


def load_frontier(paths: list[Path]):
    """The :class:`~intrinsic.frontier.Frontier` in the one file of ``paths``."""
    from .frontier import Frontier

    if len(paths) != 1:
        raise ValueError(f"frontier draws one file written by measure-frontier --output, got {len(paths)}")
    data = json.loads(paths[0].read_text())
    if not isinstance(data, dict) or "references" not in data:
        raise ValueError(f"{paths[0]} is not a frontier: write one with measure-frontier --output")
    return Frontier.from_dict(data)


if __name__ == "__main__":
    sys.exit(main())
