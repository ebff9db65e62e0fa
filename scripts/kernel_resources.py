"""Compile every Triton kernel variant for sm_80 and sm_90 (no GPU needed) and print their resources.

    python scripts/kernel_resources.py            # writes scripts/results/kernel_resources.{md,json}
    python scripts/kernel_resources.py --quick    # the largest block of each variant only

For each variant the dispatcher can launch: registers per thread, spill instructions, shared
memory against the target's limit, and SASS instructions per output entry, against the fused
float32 forward's budget (``intrinsic.kernels.resources`` derives it). Run from anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _compile(args):
    from intrinsic.kernels.resources import compile_variant

    variant, arch = args
    try:
        return compile_variant(variant, arch).as_dict()
    except Exception as error:  # a variant that does not compile is a row of the table, not a crash
        return {"variant": variant.label, "target": f"sm_{arch}", "error": f"{error.__class__.__name__}: {error}"[:300]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the largest block of each kernel and dtype")
    parser.add_argument("--output", type=Path, default=RESULTS / "kernel_resources")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    os.environ.pop("TRITON_INTERPRET", None)  # compile for the GPU, never interpret

    import triton

    from intrinsic.kernels.resources import FUSED_FORWARD_BUDGET, TARGETS, Resources, table, variants

    chosen = variants()
    if args.quick:
        top = {}
        for v in chosen:
            top[(v.kernel, v.dtype, v.io_dtype, v.branch)] = v
        chosen = list(top.values())
    jobs = [(v, arch) for v in chosen for arch in TARGETS.values()]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(_compile, jobs))
    failed = [row for row in rows if "error" in row]
    good = [Resources(**row) for row in rows if "error" not in row]
    text = "\n".join([
        f"# Triton kernel resources (Triton {triton.__version__}, compiled without a GPU)", "",
        f"Budget for the fused float32 forward: {FUSED_FORWARD_BUDGET} instructions per entry "
        "(see `intrinsic/kernels/resources.py`). Spills: LDL/STL instructions. Instructions: static SASS count "
        "without NOPs over the entries each thread owns.", "",
        table(good), "",
        *(["## Variants that failed to compile", ""] + [f"- {r['variant']} {r['target']}: {r['error']}" for r in failed]
          if failed else []),
    ])
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".md").write_text(text + "\n")
    summary = {"triton": triton.__version__, "rows": rows}
    args.output.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
