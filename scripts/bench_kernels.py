"""GPU benchmark of the Triton kernels, against the memory-bandwidth limit and the alternatives.

    python scripts/bench_kernels.py           # on a CUDA machine: writes scripts/results/bench_kernels.{json,md}
    TRITON_INTERPRET=1 python scripts/bench_kernels.py --smoke   # CPU: tiny sizes, checks the script runs

What it measures, each as a ratio to a baseline timed in the same run:

1. A device-to-device copy of N float32 (``y.copy_(x)``): the bandwidth limit, bytes = 8N.
2. Fastfood through the public API with ``backend="triton"``, for block sizes L = 2^10 … 2^13
   and D up to 3.6·10^8 (RoBERTa-large): ``project`` is ``P.matvec(θ_d)`` (writes 4D bytes);
   ``fused`` is ``P.add_to(θ_d, [θ₀], None)``, θ₀ + P θ_d in one pass (reads θ₀, writes the
   result: 8D bytes); ``transpose`` is ``P.rmatvec(g)`` (reads g: 4D bytes). Only these bytes
   are counted, so "of copy" is the fraction of the copy's bandwidth reached (target ≥ 0.70
   for the forward). The pure-PyTorch Fastfood path is timed at the smallest D for its ratio.
3. The Hadamard transform of D/L rows of L: ours, ``fast-hadamard-transform`` where it imports
   (carry the ``tokenspeed-fast-hadamard-transform`` wheel to try it), and the torch path.
4. End to end on a BERT-base-sized classifier (random weights) at batch 32 × 128, bf16
   autocast, AdamW: the step time and peak memory of full fine-tuning and of subspace training
   (targets: step ≤ 1.15× full, peak ≤ full). On CUDA subspace training runs twice, with the
   Fastfood kernel and forced to PyTorch (column ``backend``); on CPU (``--smoke``) only with
   PyTorch, as the kernel there runs under Triton's interpreter (seconds per step).

Where the projection asked for the kernel falls back to PyTorch (a block larger than the
kernel's cap, a failed first launch), it warns; the column ``fallback`` keeps that warning, and
the row's times are then PyTorch's.

Every PyTorch baseline is forced: built with ``backend="torch"`` and timed with
``$INTRINSIC_FASTFOOD_BACKEND`` and ``$INTRINSIC_HADAMARD_BACKEND`` set to ``torch`` (restored
afterwards), so that no "auto" choice inside it can pick a Triton kernel. The report is written
after each section, so a run stopped part-way keeps the sections that finished.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROBERTA_LARGE_D = 355_359_744  # parameters of roberta-large (MLM head included)
BERT_BASE_D = 109_483_778  # bert-base-uncased with a 2-label head
BACKEND_ENV_VARS = ("INTRINSIC_FASTFOOD_BACKEND", "INTRINSIC_HADAMARD_BACKEND")


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the duration of the block, then restore them exactly."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def forced_backend(backend: str):
    """Context in which Fastfood computes with ``backend``; for ``"torch"`` the Hadamard transform too."""
    if backend == "torch":
        return environment(**dict.fromkeys(BACKEND_ENV_VARS, "torch"))
    return environment(INTRINSIC_FASTFOOD_BACKEND=backend)


def rearm_fallback_warnings() -> None:
    """Let ``intrinsic``'s once-per-message fallback warnings fire again."""
    from intrinsic.notices import warn_once

    warn_once.cache_clear()


@contextlib.contextmanager
def fallback_warnings():
    """Record every warning raised in the block (the list it yields); fallback warnings re-armed."""
    rearm_fallback_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def first_message(caught) -> str | None:
    """The first RuntimeWarning's message among recorded warnings: how a backend says it fell back."""
    return next((str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)), None)


def fresh_peak_memory(device: torch.device) -> None:
    """Free what earlier measurements left behind, then start a new peak-memory count."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timer(device: torch.device, fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(stop) / 1e3)
        else:
            begin = time.perf_counter()
            fn()
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def copy_bandwidth(device, n: int, repeats: int) -> dict:
    """The device's copy bandwidth on ``n`` float32 (read + written bytes)."""
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    seconds = timer(device, lambda: y.copy_(x), repeats)
    return {"n": n, "seconds": seconds, "GB/s": 8 * n / seconds / 1e9}


def fastfood_cases(P, theta: torch.Tensor, vector: torch.Tensor) -> dict:
    """{op: (callable, bytes counted)} for a projection P with one segment of D = ``vector.numel()``.

    ``vector`` is θ₀ for ``fused`` and g for ``transpose``."""
    D = vector.numel()

    def fused():
        with torch.no_grad():
            return P.add_to(theta, [vector], None)

    return {"project": (lambda: P.matvec(theta), 4 * D), "fused": (fused, 8 * D),
            "transpose": (lambda: P.rmatvec(vector), 4 * D)}


def fastfood_rows(device, D: int, block_sizes: list[int], copy_gbs: float, repeats: int,
                  torch_path: bool) -> list[dict]:
    """Kernel time of project / fused / transpose per block size; with ``torch_path``, the forced PyTorch time too.

    ``fallback`` is the warning with which the projection fell back to PyTorch at this block size
    (its times are then PyTorch's), or None."""
    from intrinsic.projections import FastfoodProjection

    rows = []
    vector = torch.randn(D, device=device)
    for L in block_sizes:
        theta = torch.randn(L, device=device)
        P = FastfoodProjection(L, [D], seed=0, block_size=L, backend="triton").to(device)
        with fallback_warnings() as fallbacks:
            timings = {op: (timer(device, fn, repeats), nbytes)
                       for op, (fn, nbytes) in fastfood_cases(P, theta, vector).items()}
        baseline = {}
        if torch_path:
            with forced_backend("torch"):
                reference = FastfoodProjection(L, [D], seed=0, block_size=L, backend="torch").to(device)
                baseline = {op: timer(device, fn, max(1, repeats // 4), warmup=1)
                            for op, (fn, _) in fastfood_cases(reference, theta, vector).items()}
            del reference
        for op, (seconds, nbytes) in timings.items():
            row = {"op": op, "D": D, "L": L, "seconds": seconds, "GB/s": nbytes / seconds / 1e9,
                   "of_copy": nbytes / seconds / 1e9 / copy_gbs, "fallback": first_message(fallbacks)}
            if op in baseline:
                row["torch_seconds"] = baseline[op]
                row["speedup_vs_torch"] = baseline[op] / seconds
            rows.append(row)
            print(format_row(row), flush=True)
        del P
    return rows


def hadamard_rows(device, D: int, block_sizes: list[int], copy_gbs: float, repeats: int) -> list[dict]:
    """The transform of D/L rows of L with every available backend, each named explicitly."""
    from intrinsic.hadamard import available_backends, hadamard_transform

    rows = []
    for L in block_sizes:
        x = torch.randn(D // L, L, device=device)
        row = {"op": "hadamard", "D": (D // L) * L, "L": L}
        for backend in available_backends(device):
            seconds = timer(device, functools.partial(hadamard_transform, x, backend=backend), repeats)
            row[f"{backend}_seconds"] = seconds
        ours = row.get("triton_seconds")
        if ours:
            row["of_copy"] = 8 * x.numel() / ours / 1e9 / copy_gbs
            for other in ("fast_hadamard_transform", "torch"):
                if f"{other}_seconds" in row:
                    row[f"speedup_vs_{other}"] = row[f"{other}_seconds"] / ours
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def training_config(small: bool):
    """BERT-base (2 labels), or a tiny BERT for ``--smoke``."""
    from transformers import BertConfig

    if small:
        return BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, num_labels=2)
    return BertConfig(num_labels=2)


def training_step_row(device, config, ids, labels, repeats: int, d: int | None, said: bool) -> dict:
    """Median step time and peak memory of one configuration; full fine-tuning when ``d`` is None.

    The model and optimiser are locals, dropped when it returns; the next call's
    ``fresh_peak_memory`` collects them and empties the cache before it counts again."""
    from transformers import BertForSequenceClassification

    from intrinsic import SubspaceWrapper

    fresh_peak_memory(device)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).to(device)
    D = sum(p.numel() for p in model.parameters())
    if d is not None:
        model = SubspaceWrapper(model, d=d, said=said, seed=0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5 if d is None else 3e-2)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = timer(device, step, repeats, warmup=3)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"op": "train_step", "mode": "full" if d is None else ("SAID" if said else "DID"), "d": d, "D": D,
            "seconds": seconds, "peak_bytes": peak}


def training_steps(device, dims: list[int], batch: int, length: int, repeats: int, small: bool) -> list[dict]:
    """Full fine-tuning, then subspace training at each d (DID and SAID) with each Fastfood backend."""
    config = training_config(small)
    ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    full = {**training_step_row(device, config, ids, labels, repeats, None, False), "backend": None}
    print(format_row(full), flush=True)
    rows = [full]
    for d in dims:
        for said in (False, True):
            for backend in ("triton", "torch") if device.type == "cuda" else ("torch",):
                with forced_backend(backend), fallback_warnings() as fallbacks:
                    row = {**training_step_row(device, config, ids, labels, repeats, d, said), "backend": backend}
                if backend == "triton":
                    row["fallback"] = first_message(fallbacks)
                row["time_vs_full"] = row["seconds"] / full["seconds"]
                if row["peak_bytes"] is not None:
                    row["peak_vs_full"] = row["peak_bytes"] / full["peak_bytes"]
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    """One line ``key=value`` per entry, floats to 4 significant digits."""
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version from ``nvidia-smi``, or None where it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def device_description(device: torch.device) -> dict:
    """Versions and hardware: python, torch, triton, CUDA, GPU name, capability, memory, driver."""
    try:
        import triton

        triton_version = triton.__version__
    except Exception as error:  # noqa: BLE001 - not installed, or built for another torch
        triton_version = f"unavailable ({error.__class__.__name__})"
    info = {"device": platform.processor() or "cpu", "python": platform.python_version(), "torch": torch.__version__,
            "triton": triton_version, "cuda": torch.version.cuda}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(device=properties.name, capability=f"{properties.major}.{properties.minor}",
                    memory_gib=round(properties.total_memory / 2**30, 1), driver=_nvidia_driver())
    try:
        import fast_hadamard_transform  # noqa: F401

        info["fast_hadamard_transform"] = "imports"
    except Exception as error:  # noqa: BLE001 - not installed, or built for another torch
        info["fast_hadamard_transform"] = f"unavailable ({error.__class__.__name__})"
    return info


def _cell(value) -> str:
    """A table cell: floats to 4 significant digits, None (or absent) empty."""
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict]) -> list[str]:
    """Markdown lines of a table with one column per key seen in ``rows``."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def markdown(report: dict) -> str:
    """The report as Markdown: the sections measured so far."""
    lines = [f"# Kernel benchmark on {report['environment']['device']}", "",
             f"Environment: `{json.dumps(report['environment'])}`", ""]
    if "copy" in report:
        copy = report["copy"]
        lines += [f"Copy baseline: {copy['GB/s']:.0f} GB/s (bytes read + written, N = {copy['n']:,}).", ""]
    sections = (("Fastfood kernels", "fastfood"), ("Hadamard transform", "hadamard"), ("Training step", "train"))
    for title, key in sections:
        if report.get(key):
            lines += [f"## {title}", "", *markdown_table(report[key]), ""]
    return "\n".join(lines)


def write_report(report: dict, output: Path | None) -> None:
    """Write ``output``.json and .md (nothing when ``output`` is None)."""
    if output is None:
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {output.with_suffix('.json')} and {output.with_suffix('.md')}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (runs on CPU under TRITON_INTERPRET=1)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", type=Path, default=None, help="default scripts/results/bench_kernels (GPU only)")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from intrinsic.kernels import unavailable_reason

    reason = unavailable_reason(device)
    if reason is not None:
        print(f"bench_kernels: {reason}. Run it on a CUDA machine, or with TRITON_INTERPRET=1 --smoke.",
              file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.smoke:
        print("bench_kernels: no GPU here; only --smoke runs on CPU (it measures nothing meaningful).", file=sys.stderr)
        return 2
    if args.smoke:
        sizes, blocks, repeats, dims, batch, length = [5_000], [1 << 10, 1 << 11], 1, [64], 2, 16
    else:
        # Blocks up to the float32 kernel cap, and one above it (timed on PyTorch, marked as a fallback).
        sizes, blocks, repeats = [BERT_BASE_D, ROBERTA_LARGE_D], [1 << k for k in range(10, 14)], args.repeats
        dims, batch, length = [1_000, 4_000, 10_000], 32, 128
    output = args.output or (RESULTS / "bench_kernels" if not args.smoke else None)

    report = {"environment": device_description(device), "smoke": args.smoke}
    report["copy"] = copy_bandwidth(device, max(sizes), repeats)
    print(format_row(report["copy"]), flush=True)
    write_report(report, output)
    copy_gbs = report["copy"]["GB/s"]
    report["fastfood"] = [row for i, D in enumerate(sizes)
                          for row in fastfood_rows(device, D, blocks, copy_gbs, repeats, torch_path=i == 0)]
    write_report(report, output)
    report["hadamard"] = hadamard_rows(device, sizes[0], blocks, copy_gbs, repeats)
    write_report(report, output)
    report["train"] = training_steps(device, dims, batch, length, max(3, repeats // 2), small=args.smoke)
    write_report(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
