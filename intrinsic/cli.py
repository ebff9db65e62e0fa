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
from dataclasses import MISSING, Field, dataclass, fields
from pathlib import Path

from .errors import ConfigError
from .measure import MeasureConfig
from .store import DEFAULT_STORE

FIGURE_FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class Option:
    """A flag of ``measure-did`` beyond the :class:`MeasureConfig` fields (where the results go)."""

    flag: str
    python: str | None  # the same setting in Python, if there is one
    default: object
    shown: str  # the default as help and the README show it
    help: str
    kwargs: dict


OPTIONS = (
    Option("--output", "result.to_dict()", None, "none", "write the JSON summary here", {"type": Path}),
    Option("--figure", "result.plot()", None, "none",
           f"draw metric against d to this file ({', '.join(FIGURE_FORMATS)})", {"type": Path}),
    Option("--results", "results", DEFAULT_STORE, str(DEFAULT_STORE),
           "store of finished runs (JSONL); reruns skip them", {"type": Path}),
    Option("--no-progress", "progress=False", False, "off", "no progress bars", {"action": "store_true"}),
)


def cli_flag(f: Field) -> str:
    """The ``measure-did`` flag of a :class:`MeasureConfig` field: ``lrs`` → ``--lr``, ``start_d`` → ``--start-d``."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


FLAGS = {f.name: cli_flag(f) for f in fields(MeasureConfig)} | {
    "models": "--model", "model": "--model", "results": "--results"}


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _default(f: Field):
    return f.default_factory() if f.default is MISSING else f.default


def _is_switch(f: Field) -> bool:
    """A bool field: ``--name`` turns it on, ``--no-name`` off."""
    return not _required(f) and isinstance(_default(f), bool)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _value_text(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}".replace("e-0", "e-").replace("e+0", "e+")
    return str(value)


def default_text(f: Field, code: str = "") -> str:
    """How a field's default reads: "required", its ``shown`` text, on/off, or the value (in ``code`` quotes)."""
    if _required(f):
        return "required"
    if f.metadata["shown"] is not None:
        return f.metadata["shown"]
    value = _default(f)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{code}{_value_text(value)}{code}"


def _meaning(f: Field) -> str:
    choices = f.metadata["choices"]
    return f.metadata["help"] + ("" if choices is None else f" ({', '.join(choices)})")


def build_parser() -> argparse.ArgumentParser:
    """The ``measure-did`` parser: one flag per :class:`MeasureConfig` field, then :data:`OPTIONS`."""
    p = argparse.ArgumentParser(prog="measure-did", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(MeasureConfig):
        flag, meta = cli_flag(f), f.metadata
        help_text = meta["help"].replace("%", "%%")
        if not _required(f):
            help_text += f" (default: {default_text(f)})".replace("%", "%%")
        if _is_switch(f):
            p.add_argument(flag, dest=f.name, action="store_true", default=_default(f), help=help_text)
            p.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=f"turn {flag} off")
            continue
        kwargs = {key: meta[key] for key in ("type", "nargs", "choices") if meta[key] is not None}
        if meta["choices"] is None:
            kwargs["metavar"] = flag[2:].upper().replace("-", "_")  # --lr LR, not the field's LRS
        if _required(f):
            kwargs["required"] = True
        else:
            kwargs["default"] = _default(f)
        p.add_argument(flag, dest=f.name, help=help_text, **kwargs)
    for option in OPTIONS:
        p.add_argument(option.flag, default=option.default, help=f"{option.help} (default: {option.shown})",
                       **option.kwargs)
    return p


def defaults_table() -> str:
    """The README's table of every ``measure-did`` flag, its Python name, default and meaning (Markdown)."""
    lines = [_row("flag", "Python", "default", "meaning"), "|---|---|---|---|"]
    for f in fields(MeasureConfig):
        flag = f"`{cli_flag(f)}`" + (f", `--no-{cli_flag(f)[2:]}`" if _is_switch(f) else "")
        lines.append(_row(flag, f"`{f.name}`", default_text(f, code="`"), _meaning(f)))
    for option in OPTIONS:
        shown = option.shown if option.default in (None, False) else f"`{option.shown}`"
        lines.append(_row(f"`{option.flag}`", "" if option.python is None else f"`{option.python}`",
                          shown, option.help))
    return "\n".join(lines) + "\n"


def config_from_args(args: argparse.Namespace) -> MeasureConfig:
    """The :class:`MeasureConfig` of parsed arguments, for the first ``--model``.

    A setting whose default is one value but that takes several (``full_lr``) stays one value
    when given one, as a Python caller would write it.
    """
    values = {}
    for f in fields(MeasureConfig):
        value = getattr(args, f.name)
        if f.name == "model":
            value = value[0]
        elif (f.metadata["nargs"] == "+" and f.default is not MISSING and f.default is not None
              and isinstance(value, list) and len(value) == 1):
            value = value[0]
        values[f.name] = value
    return MeasureConfig(**values)


def _check_writable(path: Path, flag: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write {flag} {path} ({error.strerror}); choose a writable path") from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .sweep import measure_models

    several = len(args.model) > 1
    try:
        config = config_from_args(args)
        if args.figure is not None and args.figure.suffix.lower() not in FIGURE_FORMATS:
            raise ValueError(f"--figure {args.figure}: use one of {', '.join(FIGURE_FORMATS)}")
        for path, flag in ((args.output, "--output"), (args.figure, "--figure"), (args.results, "--results")):
            if path is not None:
                _check_writable(path, flag)
        sweep = measure_models(args.model, config, results=args.results, progress=not args.no_progress,
                               on_result=lambda result: print(result.table() + ("\n" if several else "")))
    except ConfigError as error:  # the library names the Python argument; say the flag
        print(f"measure-did: error: {FLAGS.get(error.argument, error.argument)} {error.problem}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as error:
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
