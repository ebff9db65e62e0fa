"""Check the Triton kernels on a CUDA GPU, then benchmark them: one command, one summary.

    python scripts/gpu_check.py                 # all five stages
    python scripts/gpu_check.py --quick         # fewer sizes, fewer repeats
    python scripts/gpu_check.py --skip-tests --skip-bench

Time: at most about 15 minutes of GPU time, about 8 with ``--quick``: the tests and the benchmark
take most of it and run under timeouts of 5 and 7 minutes (4 and 3 with ``--quick``); the probes
and the comparisons at scale take a few minutes (an estimate: not yet timed on a GPU).

Stages, each under its own header; a stage that fails or raises is recorded and the next runs:

1. ``environment``: python, torch, CUDA, triton, GPU name, compute capability, memory, driver.
2. ``tests``: ``pytest -x`` on the kernel, Hadamard, projection and wrapper tests, on CUDA
   (``TRITON_INTERPRET`` unset), with the pass/fail counts.
3. ``probes``: ``FastfoodProjection(L, [D], block_size=L, backend="triton")`` for float32 and
   float64 and L = 2^10 … 2^15: whether ``matvec`` / ``rmatvec`` run, whether the Triton kernel
   computed the result (the profiler lists the kernels launched) or the projection fell back to
   PyTorch (and with which warning), and the error against the PyTorch backend. A fallback
   that warns is a finding, not a failure; a silent one, an exception or a wrong result fails.
4. ``scale``: at D = 109,483,778 (BERT-base), as one segment and as BERT-base's 201 tensors,
   d ∈ {1000, 4000}: max relative error (max |a − b| / max |b|) of ``matvec``, ``rmatvec`` and
   ``add_to`` against ``backend="torch"``; and in float64 at D = 10^6 the adjoint gap
   |⟨Px, y⟩ − ⟨x, Pᵀy⟩| / (‖Px‖ ‖y‖) of both backends. Fallbacks are judged as in the probes
   (a d whose block exceeds the kernel's cap is computed by PyTorch, with a warning).
5. ``bench``: ``scripts/bench_kernels.py`` (writes scripts/results/bench_kernels.{json,md}).

Every PyTorch reference is built with ``backend="torch"`` and computed with
``$INTRINSIC_FASTFOOD_BACKEND`` and ``$INTRINSIC_HADAMARD_BACKEND`` set to ``torch``. After every
stage the summary so far goes to scripts/results/gpu_check.{json,md} (``--output`` to change).
Exit status: 0 when every stage passed, 1 when one did not, 2 without a CUDA GPU.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
DEFAULT_OUTPUT = SCRIPTS / "results" / "gpu_check"
TEST_FILES = ("tests/test_kernels.py", "tests/test_hadamard.py", "tests/test_projections.py", "tests/test_wrapper.py")
PROBE_D = 1 << 20  # 32 blocks of the largest probed L
ADJOINT_SEGMENTS = (250_000, 768, 3_072, 589_824, 156_336)  # D = 10^6 in tensors of BERT-like sizes
# Max relative error accepted against the PyTorch backend. It keeps G in float32, so in float64
# the two agree only to float32 rounding of G (≈1e-7 measured under the interpreter).
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-6}
ADJOINT_TOLERANCE = 1e-10  # float64
# Environment variables that would change what runs: the interpreter, forced backends.
CLEARED_ENV_VARS = ("TRITON_INTERPRET", "INTRINSIC_FASTFOOD_BACKEND", "INTRINSIC_HADAMARD_BACKEND")


def load_bench():
    """scripts/bench_kernels.py as a module (its timing, environment and Markdown helpers)."""
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPTS / "bench_kernels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


# ----------------------------------------------------------------------------- pure helpers
def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual − expected| / max |expected|, in float64; 0 when both are all zero."""
    actual, expected = actual.double(), expected.double()
    scale = expected.abs().max().item()
    gap = (actual - expected).abs().max().item()
    if scale == 0:
        return 0.0 if gap == 0 else float("inf")
    return gap / scale


def adjoint_gap(P, x: torch.Tensor, y: torch.Tensor) -> float:
    """|⟨Px, y⟩ − ⟨x, Pᵀy⟩| / (‖Px‖ ‖y‖): zero, up to rounding, when ``rmatvec`` is ``matvec``'s transpose."""
    Px = P.matvec(x)
    return abs(torch.dot(Px, y).item() - torch.dot(x, P.rmatvec(y)).item()) / (Px.norm() * y.norm()).item()


def bert_base_segment_sizes() -> list[int]:
    """Sizes of bert-base-uncased's 201 tensors with a 2-label classifier head (sum 109,483,778)."""
    hidden, intermediate, vocab, positions = 768, 3072, 30522, 512
    embeddings = [vocab * hidden, positions * hidden, 2 * hidden, hidden, hidden]
    attention = [hidden * hidden, hidden] * 4 + [hidden, hidden]  # q, k, v, output dense; LayerNorm
    feed_forward = [hidden * intermediate, intermediate, intermediate * hidden, hidden, hidden, hidden]
    head = [hidden * hidden, hidden, 2 * hidden, 2]  # pooler, classifier
    return embeddings + (attention + feed_forward) * 12 + head


def parse_pytest_counts(output: str) -> dict[str, int]:
    """{"passed": n, "failed": n, …} from pytest's final summary line (empty if there is none)."""
    outcome = r"\b(passed|failed|error|errors|skipped|deselected)\b"
    timed = r"\bin [\d.]+s\b"
    summaries = [line for line in output.splitlines() if re.search(outcome, line) and re.search(timed, line)]
    if not summaries:
        return {}
    counts = {}
    counted = r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)"
    for number, word in re.findall(counted, summaries[-1]):
        counts[word.rstrip("s") if word in ("errors", "warnings") else word] = int(number)
    return counts


def summary_markdown(report: dict) -> str:
    """The summary as Markdown: one section per stage, scalars as a list and row lists as tables."""
    lines = ["# GPU check", ""]
    for name, stage in report["stages"].items():
        lines += [f"## {name}: {stage['status']}", ""]
        for key, value in stage.items():
            if key == "status" or (isinstance(value, list) and value and isinstance(value[0], dict)):
                continue
            lines.append(f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}")
        lines.append("")
        for key, value in stage.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                lines += [f"### {key}", "", *bench.markdown_table(value), ""]
    return "\n".join(lines)


def triton_kernel_names(module) -> set[str]:
    """Names of the functions ``module`` defines with ``triton.jit`` (autotuned ones included);
    kernels it imports from elsewhere are left out."""
    names = set()
    for value in vars(module).values():
        if not type(value).__module__.startswith("triton."):
            continue
        while hasattr(value, "fn"):  # Autotuner / Heuristics → JITFunction → the Python function
            value = value.fn
        if getattr(value, "__module__", None) == module.__name__:
            names.add(value.__name__)
    return names


# ----------------------------------------------------------------------------- observing a call
def classify_backend(launched: list[str], ours: set[str], warned: bool) -> str:
    """Which backend computed a call, from the CUDA kernels it launched and its warnings.

    "torch" when it raised a RuntimeWarning (a fallback, even if a kernel was launched first to
    probe it) or launched kernels but none of ``ours``; "triton" when one of ``ours`` ran;
    "unknown" when the profiler saw no kernel at all."""
    if warned:
        return "torch"
    if not launched:
        return "unknown"
    return "triton" if any(kernel.startswith(name) for kernel in launched for name in ours) else "torch"


def observe(fn):
    """Run ``fn()`` on CUDA under the profiler; return (result, evidence).

    evidence: ``backend`` (see :func:`classify_backend`, with the kernels that
    ``intrinsic.kernels.fastfood`` defines as ours) and ``warnings`` (the messages raised).
    """
    import intrinsic.kernels.fastfood as fastfood_kernels

    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with bench.fallback_warnings() as caught, torch.profiler.profile(activities=activities) as profile:
        result = fn()
        torch.cuda.synchronize()
    launched = [event.name for event in profile.events() if event.device_type == torch.autograd.DeviceType.CUDA]
    warned = bench.first_message(caught) is not None
    return result, {"backend": classify_backend(launched, triton_kernel_names(fastfood_kernels), warned),
                    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}


def disabled_kernel_cases() -> dict | None:
    """Kernel cases the dispatcher has sent to PyTorch so far, where ``intrinsic.kernels`` says."""
    import intrinsic.kernels

    cases = getattr(intrinsic.kernels, "disabled_cases", None)
    if cases is None:
        return None
    return {str(case): why for case, why in cases().items()} or None


# ----------------------------------------------------------------------------- stages
def stage_environment(args, device) -> dict:
    """Versions and hardware."""
    info = {**bench.device_description(device), "python_executable": sys.executable}
    for key, value in info.items():
        print(f"  {key}: {value}")
    return info


def stage_tests(args, device) -> dict:
    """The kernel tests on CUDA, in a subprocess; passes when pytest exits 0."""
    command = [sys.executable, "-m", "pytest", "-q", *TEST_FILES, "-x"]
    returncode, output, timed_out = run_streaming(command, args.test_timeout)
    counts = parse_pytest_counts(output)
    return {"ok": returncode == 0, "command": " ".join(["python", *command[1:]]), "returncode": returncode,
            "timed_out": timed_out, **counts}


def attempt(measure) -> dict:
    """``measure()``'s dict, or {"error": …} if it raises: a compile failure (out of resources)
    or a launch error is a finding to record, and the next case still runs."""
    try:
        return measure()
    except Exception as error:  # noqa: BLE001 - see the docstring
        return {"error": f"{error.__class__.__name__}: {error}"[:500]}


def judged(row: dict, value: str, tolerance: float, warned_fallback_ok: bool = False) -> dict:
    """``row`` with ``ok``: no error, ``row[value]`` ≤ tolerance, and the Triton kernel ran (or,
    with ``warned_fallback_ok``, the projection said why it fell back to PyTorch)."""
    fell_back = row.get("backend") == "torch" and not (warned_fallback_ok and row.get("warnings"))
    return {**row, "ok": "error" not in row and row[value] <= tolerance and not fell_back}


def compare(triton_fn, torch_fn) -> dict:
    """The Triton call observed and the PyTorch call forced: backend used, warnings, relative error."""
    result, evidence = observe(triton_fn)
    with bench.forced_backend("torch"):
        reference = torch_fn()
    if isinstance(result, list):
        result, reference = torch.cat([t.reshape(-1) for t in result]), torch.cat([t.reshape(-1) for t in reference])
    return {"backend": evidence["backend"], "rel_error": relative_error(result, reference),
            "warnings": "; ".join(evidence["warnings"]) or None}


def projections(d: int, sizes, device, **options):
    """(Triton projection, PyTorch projection) with the same random state."""
    from intrinsic.projections import FastfoodProjection

    return (FastfoodProjection(d, sizes, seed=0, backend="triton", **options).to(device),
            FastfoodProjection(d, sizes, seed=0, backend="torch", **options).to(device))


def probe_rows(dtype, L: int, device) -> list[dict]:
    """matvec and rmatvec with blocks of L in ``dtype``, the Triton backend requested."""
    fast, reference = projections(L, [PROBE_D], device, block_size=L)
    theta = torch.randn(L, dtype=dtype, device=device)
    g = torch.randn(PROBE_D, dtype=dtype, device=device)
    rows = []
    for op, argument in (("matvec", theta), ("rmatvec", g)):
        calls = [functools.partial(getattr(P, op), argument) for P in (fast, reference)]
        measured = attempt(functools.partial(compare, *calls))
        row = judged({"dtype": str(dtype).removeprefix("torch."), "L": L, "op": op, **measured},
                     "rel_error", TOLERANCE[dtype], warned_fallback_ok=True)
        rows.append(row)
        print("  " + bench.format_row(row), flush=True)
    return rows


def fallbacks(rows: list[dict]) -> list[str] | None:
    """The cases where the Triton backend was asked for and PyTorch computed, or None."""
    described = [", ".join(f"{k}={row[k]}" for k in ("dtype", "L", "segments", "d", "op") if k in row)
                 for row in rows if row.get("backend") == "torch"]
    return described or None


def stage_probes(args, device) -> dict:
    """Each (dtype, block size) probed; passes when every call agreed with PyTorch and used the
    kernel, or fell back to PyTorch saying why (a probe's finding, listed in ``fell_back_to_torch``)."""
    rows = []
    for dtype in (torch.float32, torch.float64):
        for log_l in args.probe_log_blocks:
            rows += probe_rows(dtype, 1 << log_l, device)
            free_memory()
    return {"ok": all(r["ok"] for r in rows), "fell_back_to_torch": fallbacks(rows),
            "disabled_kernel_cases": disabled_kernel_cases(), "rows": rows}


def scale_rows(name: str, sizes: list[int], d: int, device) -> list[dict]:
    """matvec, rmatvec and add_to (θ₀ ~ 0.02·N(0, 1), SAID-like scales) against PyTorch, float32."""
    fast, reference = projections(d, sizes, device)
    theta = torch.randn(d, device=device)
    g = torch.randn(sum(sizes), device=device)
    bases = list((0.02 * torch.randn(sum(sizes), device=device)).split(sizes))
    scales = 1 + 0.1 * torch.randn(len(sizes), device=device)
    cases = {"matvec": (lambda P: P.matvec(theta)), "rmatvec": (lambda P: P.rmatvec(g)),
             "add_to": (lambda P: P.add_to(theta, bases, scales))}
    rows = []
    with torch.no_grad():
        for op, call in cases.items():
            measured = attempt(functools.partial(compare, functools.partial(call, fast),
                                                 functools.partial(call, reference)))
            row = judged({"layout": name, "segments": len(sizes), "D": sum(sizes), "d": d, "op": op, **measured},
                         "rel_error", TOLERANCE[torch.float32], warned_fallback_ok=True)
            rows.append(row)
            print("  " + bench.format_row(row), flush=True)
    return rows


def adjoint_rows(sizes, d: int, device) -> list[dict]:
    """The float64 adjoint gap of each backend at D = sum(sizes)."""
    fast, reference = projections(d, sizes, device)
    x = torch.randn(d, dtype=torch.float64, device=device)
    y = torch.randn(sum(sizes), dtype=torch.float64, device=device)

    def triton_gap():
        gap, evidence = observe(lambda: adjoint_gap(fast, x, y))
        return {"backend": evidence["backend"], "gap": gap, "warnings": "; ".join(evidence["warnings"]) or None}

    def torch_gap():
        with bench.forced_backend("torch"):
            return {"backend": "torch (forced)", "gap": adjoint_gap(reference, x, y)}

    case = {"op": "adjoint", "segments": len(sizes), "D": sum(sizes), "d": d}
    rows = [judged({**case, **attempt(measure)}, "gap", ADJOINT_TOLERANCE, warned_fallback_ok=True)
            for measure in (triton_gap, torch_gap)]
    for row in rows:
        print("  " + bench.format_row(row), flush=True)
    return rows


def stage_scale(args, device) -> dict:
    """Triton against PyTorch at BERT-base size; the adjoint identity in float64 at D = 10^6."""
    layouts = {"one segment": [bench.BERT_BASE_D], "bert-base tensors": bert_base_segment_sizes()}
    rows, adjoint = [], []
    for d in args.scale_dims:
        for name, sizes in layouts.items():
            rows += scale_rows(name, sizes, d, device)
            free_memory()
        for sizes in ([sum(ADJOINT_SEGMENTS)], list(ADJOINT_SEGMENTS)):
            adjoint += adjoint_rows(sizes, d, device)
    worst = max((r["rel_error"] for r in rows if r.get("backend") == "triton"), default=None)
    return {"ok": all(r["ok"] for r in rows + adjoint), "max_rel_error_of_kernel": worst,
            "fell_back_to_torch": fallbacks(rows + adjoint), "disabled_kernel_cases": disabled_kernel_cases(),
            "rows": rows, "adjoint": adjoint}


def stage_bench(args, device) -> dict:
    """scripts/bench_kernels.py in a subprocess; passes when it exits 0."""
    command = [sys.executable, str(SCRIPTS / "bench_kernels.py"), "--repeats", str(args.bench_repeats)]
    returncode, _, timed_out = run_streaming(command, args.bench_timeout)
    return {"ok": returncode == 0, "returncode": returncode, "timed_out": timed_out,
            "results": str(bench.RESULTS / "bench_kernels.json")}


# ----------------------------------------------------------------------------- running
def free_memory() -> None:
    """Return cached GPU memory between large cases."""
    gc.collect()
    torch.cuda.empty_cache()


def run_streaming(command: list[str], timeout: float) -> tuple[int, str, bool]:
    """Run ``command`` from the repository root, echoing its output; (exit status, output, timed out)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    lines = []
    try:
        for line in process.stdout:
            print("  " + line, end="", flush=True)
            lines.append(line)
        returncode = process.wait()
    finally:
        timed_out = not timer.is_alive()
        timer.cancel()
    if timed_out:
        print(f"  (stopped after {timeout:.0f} s)", flush=True)
    return returncode, "".join(lines), timed_out


def run_stage(name: str, stage, args, device, report: dict) -> None:
    """Run one stage under a header, record its outcome whatever happens, write the summary."""
    print(f"\n=== {name} " + "=" * max(0, 70 - len(name)), flush=True)
    begin = time.perf_counter()
    try:
        result = stage(args, device)
        status = "passed" if result.pop("ok", True) else "FAILED"
    except Exception as error:  # noqa: BLE001 - one stage's failure must not stop the others
        traceback.print_exc()
        result, status = {"error": f"{error.__class__.__name__}: {error}"}, "ERROR"
    report["stages"][name] = {"status": status, "seconds": round(time.perf_counter() - begin, 1), **result}
    print(f"--- {name}: {status} ({report['stages'][name]['seconds']} s)", flush=True)
    write_summary(report, args.output)


def write_summary(report: dict, output: Path) -> None:
    """Write ``output``.json and .md."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    output.with_suffix(".md").write_text(summary_markdown(report))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="block sizes 2^10 and 2^15 only, d = 1000 only, 5 bench repeats")
    parser.add_argument("--skip-tests", action="store_true", help="skip stage 2 (pytest)")
    parser.add_argument("--skip-bench", action="store_true", help="skip stage 5 (bench_kernels.py)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"summary path without suffix (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    args.probe_log_blocks = [10, 15] if args.quick else list(range(10, 16))
    args.scale_dims = [1000] if args.quick else [1000, 4000]
    args.bench_repeats = 5 if args.quick else 20
    args.test_timeout = 240 if args.quick else 300  # seconds; with the stages between, ≤ 15 minutes in all
    args.bench_timeout = 180 if args.quick else 420
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False here); nothing was run.",
              file=sys.stderr)
        return 2
    cleared = {name: os.environ.pop(name) for name in CLEARED_ENV_VARS if name in os.environ}
    if cleared:
        print(f"gpu_check: unset {cleared} for this run and its subprocesses.")
    device = torch.device("cuda")
    report = {"command": " ".join(["scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
              "cleared_environment": cleared or None, "stages": {}}
    stages = [("environment", stage_environment), ("tests", stage_tests), ("probes", stage_probes),
              ("scale", stage_scale), ("bench", stage_bench)]
    skipped = {name for name, skip in (("tests", args.skip_tests), ("bench", args.skip_bench)) if skip}
    for name, stage in stages:
        if name in skipped:
            report["stages"][name] = {"status": "skipped"}
            continue
        run_stage(name, stage, args, device, report)
    write_summary(report, args.output)
    statuses = {name: stage["status"] for name, stage in report["stages"].items()}
    print(f"\n{statuses}\nwrote {args.output.with_suffix('.json')} and {args.output.with_suffix('.md')}")
    return 0 if all(status in ("passed", "skipped") for status in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
