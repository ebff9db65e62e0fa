"""``measure-frontier``: every fine-tuning method's parameters-to-90 % beside d90, for one model and task.

    measure-frontier --model ../shared/models/paraphrase-MiniLM-L3-v2 --task sst2 --data-dir ../shared/data/glue \\
        --output frontier.json --figure frontier.png
    measure-frontier --model M --task sst2 --methods said lora bitfit --lr-for lora=1e-4,1e-3 --seeds 0 1 2

Each method in --methods is measured as measure-did --method measures it (the same full
fine-tuning baseline, data, epochs, seeds, search and selection rule), under one --head policy,
each with its own learning-rate grid (--lr-for overrides one); then the head alone (head-only)
and the untrained model are measured as references. Prints the methods sorted by trainable
parameters at the paper's target and at the chance-corrected one. Every run goes to --results at
once, so rerunning the command resumes where it stopped. --dims, --start-d, --max-d and the
projection settings apply to did and said only. Redraw the figure with plot-did frontier.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from . import cli
from .errors import ConfigError
from .frontier import REFERENCE, Frontier, measure_frontier
from .measure import MeasureConfig
from .methods import HEAD_POLICIES, METHOD_NAMES, get_method
from .results import D90Result
from .runner import Runner
from .store import ResultStore

PROG = "measure-frontier"
DEFAULT_METHODS = tuple(m for m in METHOD_NAMES if m != REFERENCE)
FLAGS = cli.FLAGS | {"method": "--methods", "methods": "--methods", "said": "--methods", "lrs": "--lr-for"}
INSTEAD = {  # measure-did's flags that a frontier replaces, and what to use instead
    "--method": "a frontier measures several: --methods", "--said": "list said in --methods",
    "--no-said": "list the methods in --methods",
    "--lr": "a frontier takes one grid per method: --lr-for METHOD=LR[,LR…]",
}


class UsageError(Exception):
    """A command line argparse cannot parse (printed as one line)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


class _Instead(argparse.Action):
    """A measure-did flag that measure-frontier replaces: using it says what to use instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is measure-did's; {INSTEAD[option_string]}")


def method_name(text: str) -> str:
    """One name of --methods: a registered method other than the head-only reference."""
    if text == REFERENCE:
        raise argparse.ArgumentTypeError(f"{REFERENCE} is measured with every frontier as a reference; "
                                         "leave it out")
    if text not in METHOD_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r} is unknown; choose from {', '.join(DEFAULT_METHODS)}")
    return text


def lr_for(text: str) -> tuple[str, list[float]]:
    """``METHOD=LR[,LR…]`` → (method, [lr, …]); the method may be head-only (the reference's grid)."""
    name, sep, grid = text.partition("=")
    if not sep or not name or not grid:
        raise argparse.ArgumentTypeError(f"{text!r} is not METHOD=LR[,LR…] (lora=1e-4,1e-3)")
    if name not in METHOD_NAMES:
        raise argparse.ArgumentTypeError(f"{text!r} names no method; choose from {', '.join(METHOD_NAMES)}")
    try:
        lrs = [float(lr) for lr in grid.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: learning rates must be numbers (lora=1e-4,1e-3)") from None
    if any(not lr > 0 for lr in lrs):
        raise argparse.ArgumentTypeError(f"{text!r}: learning rates must be positive")
    return name, lrs


def max_for(text: str) -> tuple[str, int]:
    """``METHOD=N`` → (method, N): the largest knob a method's search tries."""
    name, sep, value = text.partition("=")
    if not sep or name not in METHOD_NAMES or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not METHOD=N with a known method and N ≥ 1 (pafi=65536)")
    return name, int(value)


def build_parser() -> argparse.ArgumentParser:
    """measure-did's flags (from :class:`MeasureConfig`'s field metadata) with one model, --methods
    for --method/--said, --lr-for for --lr, --head defaulting to frozen, and the frontier's outputs."""
    p = _Parser(prog=PROG, description=__doc__, parents=[cli.build_parser()], conflict_handler="resolve",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", nargs=1, required=True, metavar="MODEL",
                   help="Hugging Face model ID (roberta-base), ID@revision, or local folder")
    p.add_argument("--methods", nargs="+", type=method_name, default=list(DEFAULT_METHODS), metavar="METHOD",
                   help=f"methods to measure (default: all but {REFERENCE}: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--head", choices=HEAD_POLICIES, default="frozen",
                   help="one head policy for every method: frozen at its random start, trained directly (then "
                        "the head alone may reach the targets), or projected (did and said only) (default: frozen)")
    p.add_argument("--lr-for", action="append", type=lr_for, default=[], metavar="METHOD=LR[,LR…]",
                   help="a method's learning-rate grid instead of its default; repeatable "
                        f"(--lr-for lora=1e-4,1e-3 --lr-for {REFERENCE}=1e-2)")
    p.add_argument("--max-for", action="append", type=max_for, default=[], metavar="METHOD=N",
                   help="the largest knob a method's search tries; repeatable (default: the model's limit, "
                        "else 4,096)")
    p.add_argument("--widen", type=int, default=1, metavar="N",
                   help="a method whose every point chose one end of its learning-rate grid (points whose rates "
                        "tied aside) is measured again with one more rate beyond that end, up to N times; "
                        "0: never (default: 1)")
    p.add_argument("--output", type=Path, help="write the frontier as JSON here (default: none)")
    p.add_argument("--figure", type=Path,
                   help=f"draw metric against trainable parameters to this file ({', '.join(cli.FIGURE_FORMATS)}; "
                        "default: none)")
    for flag in INSTEAD:
        p.add_argument(flag, nargs="*", action=_Instead, help=argparse.SUPPRESS)
    p.set_defaults(method=None, said=False, lrs=None)
    return p


def grids(pairs: list[tuple[str, list[float]]], methods: list[str]) -> dict[str, list[float]]:
    """--lr-for's grids by method; each must name a measured method (or the reference) once."""
    out = {}
    for name, lrs in pairs:
        if name in out:
            raise ConfigError("lrs", f"gives {name} twice; give its whole grid once ({name}=LR,LR)")
        if name not in methods and name != REFERENCE:
            raise ConfigError("lrs", f"gives {name}, which --methods does not measure")
        out[name] = lrs
    return out


def check_methods(methods: list[str], config: MeasureConfig, results) -> None:
    """Build every method once, at its smallest knob, on the model as loaded, so that a method that
    refuses the head policy or the architecture, or lacks its package, fails before any training
    rather than after the methods before it have trained (did and said adapt any model). Every
    method that cannot run is named in one error."""
    for name in methods:
        get_method(name).check(None, config.head_policy)
    runner = Runner(config, ResultStore(results), progress=False)
    model = runner.load_model(config.seeds[0])
    refused = {}
    for name in methods:
        method = get_method(name)
        if name in ("did", "said"):
            continue
        try:
            method.build(copy.deepcopy(model), None if method.knob is None else method.knob.low,
                         head=config.head_policy, head_names=runner.head_names, seed=config.seeds[0])
        except ConfigError as error:
            if error.argument != "method":
                raise
            refused[name] = error.problem
    if len(refused) == 1:
        raise ConfigError("method", *refused.values())
    if refused:
        first = next(iter(refused))
        raise ConfigError("methods", f"{', '.join(refused)} cannot run here (the first: {refused[first]}); "
                                     "drop them from --methods to measure the others")


def _measured(result: D90Result) -> None:
    print(f"{result.method}: {result.knob or 'trainable'} at the target {result.describe('d90')}, "
          f"at the chance-corrected target {result.describe('corrected')}", flush=True)


def _error(error: Exception) -> str:
    if not isinstance(error, ConfigError):
        return str(error)
    if error.argument == "method":  # a method refused the model, or lacks its package
        return f"--methods: {error.problem}; drop it from --methods to measure the others"
    return f"{FLAGS.get(error.argument, error.argument)} {error.problem}"


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    try:
        config = cli.config_from_args(args)
        lrs = grids(args.lr_for, args.methods)
        if args.figure is not None and args.figure.suffix.lower() not in cli.FIGURE_FORMATS:
            raise ValueError(f"--figure {args.figure}: use one of {', '.join(cli.FIGURE_FORMATS)}")
        for path, flag in ((args.output, "--output"), (args.figure, "--figure"), (args.results, "--results")):
            if path is not None:
                cli._check_writable(path, flag)
        check_methods(args.methods, config, args.results)
        frontier = measure_frontier(args.methods, config, head=args.head, lrs=lrs, max_knobs=dict(args.max_for),
                                    results=args.results, widen=args.widen,
                                    progress=not args.no_progress, on_result=_measured)
    except (OSError, ValueError, RuntimeError) as error:  # ConfigError is a ValueError
        print(f"{PROG}: error: {_error(error)}", file=sys.stderr)
        return 2
    print(f"\n{frontier.table('d90')}\n\n{frontier.table('corrected')}")
    write(frontier, args.output, args.figure)
    return 0


def write(frontier: Frontier, output, figure) -> None:
    """The JSON (``output``) and the figure (``figure``), where given."""
    if output is not None:
        frontier.save(output)
        print(f"wrote {output}")
    if figure is not None:
        from . import plots

        plots.use_file_backend()
        plots.save_figure(plots.frontier(frontier), figure, formats=(figure.suffix[1:],))
        print(f"wrote {figure}")


if __name__ == "__main__":
    sys.exit(main())
