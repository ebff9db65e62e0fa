"""GPU benchmark of the Triton kernels, against the memory-bandwidth limit and the alternatives.

    python scripts/bench_kernels.py           # on a CUDA machine: writes scripts/results/bench_kernels.{json,md}
    TRITON_INTERPRET=1 python scripts/bench_kernels.py --smoke   # CPU: tiny sizes, checks the script runs

What it measures, each as a ratio to a baseline timed in the same run:

1. A device-to-device copy of N float32 (``y.copy_(x)``): the bandwidth limit, bytes = 8N.
2. Fastfood P θ_d with the Triton kernel, for block sizes L = 2^10 … 2^15 and D up to 3.6·10^8
   (RoBERTa-large): ``project`` writes P θ_d (4D bytes); ``fused`` writes θ₀ + P θ_d reading
   θ₀ (8D bytes); ``transpose`` reads g (4D bytes). Only these bytes are counted, so
   "of copy" is the fraction of the copy's bandwidth the kernel reaches (target ≥ 0.70 for the
   forward). The pure-PyTorch Fastfood path is timed at the same sizes for its ratio.
3. The Hadamard transform of D/L rows of L: ours, ``fast-hadamard-transform`` where it imports
   (carry the ``tokenspeed-fast-hadamard-transform`` wheel to try it), and the torch path.
4. End to end on a BERT-base-sized classifier (random weights) at batch 32 × 128, bf16
   autocast, AdamW: the step time and peak memory of full fine-tuning and of subspace training
   (targets: step ≤ 1.15× full, peak ≤ full).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROBERTA_LARGE_D = 355_359_744  # parameters of roberta-large (MLM head included)
BERT_BASE_D = 109_483_778  # bert-base-uncased with a 2-label head


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
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    seconds = timer(device, lambda: y.copy_(x), repeats)
    return {"n": n, "seconds": seconds, "GB/s": 8 * n / seconds / 1e9}


def fastfood_rows(device, D: int, block_sizes: list[int], copy_gbs: float, repeats: int, torch_path: bool) -> list[dict]:
    from intrinsic.kernels.fastfood import fastfood_forward, fastfood_transpose
    from intrinsic.projections import FastfoodProjection

    rows = []
    base = torch.randn(D, device=device)
    out = torch.empty_like(base)
    for L in block_sizes:
        P = FastfoodProjection(L, [D], seed=0, block_size=L, backend="triton").to(device)
        args = P._kernel_args(P.groups[0], device)
        theta = torch.randn(L, device=device)
        cases = {
            "project": (lambda: fastfood_forward(theta, out, **args), 4 * D),
            "fused": (lambda: fastfood_forward(theta, out, base=base, **args), 8 * D),
            "transpose": (lambda: fastfood_transpose(base, d=L, **args), 4 * D),
        }
        for name, (fn, nbytes) in cases.items():
            seconds = timer(device, fn, repeats)
            row = {"op": name, "D": D, "L": L, "seconds": seconds, "GB/s": nbytes / seconds / 1e9,
                   "of_copy": nbytes / seconds / 1e9 / copy_gbs}
            if torch_path and name != "fused":
                reference = FastfoodProjection(L, [D], seed=0, block_size=L, backend="torch").to(device)
                reference_fn = (lambda: reference.matvec(theta)) if name == "project" else (lambda: reference.rmatvec(base))
                row["torch_seconds"] = timer(device, reference_fn, max(1, repeats // 4), warmup=1)
                row["speedup_vs_torch"] = row["torch_seconds"] / seconds
                del reference
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def hadamard_rows(device, D: int, block_sizes: list[int], copy_gbs: float, repeats: int) -> list[dict]:
    from intrinsic.hadamard import available_backends, hadamard_transform

    rows = []
    for L in block_sizes:
        x = torch.randn(D // L, L, device=device)
        row = {"op": "hadamard", "D": (D // L) * L, "L": L}
        for backend in available_backends(device):
            seconds = timer(device, lambda: hadamard_transform(x, backend=backend), repeats)
            row[f"{backend}_seconds"] = seconds
        ours = row.get("triton_seconds")
        if ours:
            row["of_copy"] = 8 * x.numel() / ours / 1e9 / copy_gbs
            for other in ("fast_hadamard_transform", "torch"):
                if f"{other}_seconds" in row:
                    row[f"speedup_vs_{other}"] = row[f"{other}_seconds"] / ours
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


def training_steps(device, dims: list[int], batch: int, length: int, repeats: int, small: bool) -> list[dict]:
    """Step time and peak memory: full fine-tuning, then subspace training at each d (DID and SAID)."""
    from transformers import BertConfig, BertForSequenceClassification

    from intrinsic import SubspaceWrapper

    config = BertConfig(num_labels=2) if not small else BertConfig(
        vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
    labels = torch.randint(0, 2, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    rows = []
    for d, said in [(None, False)] + [(d, s) for d in dims for s in (False, True)]:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(0)
        model = BertForSequenceClassification(config).to(device)
        if d is not None:
            model = SubspaceWrapper(model, d=d, said=said, seed=0)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5 if d is None else 3e-2)

        def step():
            with autocast:
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds = timer(device, step, repeats, warmup=3)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        row = {"op": "train_step", "mode": "full" if d is None else ("SAID" if said else "DID"), "d": d,
               "D": sum(p.numel() for p in (model.parameters() if d is None else model.model.parameters())),
               "seconds": seconds, "peak_bytes": peak}
        if d is not None:
            full = rows[0]
            row["time_vs_full"] = seconds / full["seconds"]
            if peak is not None:
                row["peak_vs_full"] = peak / full["peak_bytes"]
        rows.append(row)
        print(_format_row(row), flush=True)
        del model, optimizer, params
    return rows


def _format_row(row: dict) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def device_description(device: torch.device) -> dict:
    import triton

    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version()}
    try:
        import fast_hadamard_transform  # noqa: F401

        info["fast_hadamard_transform"] = "imports"
    except Exception as error:  # not installed, or built for another torch
        info["fast_hadamard_transform"] = f"unavailable ({error.__class__.__name__})"
    return info


def markdown(report: dict) -> str:
    lines = [f"# Kernel benchmark on {report['environment']['device']}", "",
             f"Environment: `{json.dumps(report['environment'])}`", "",
             f"Copy baseline: {report['copy']['GB/s']:.0f} GB/s (bytes read + written, N = {report['copy']['n']:,}).", ""]
    for title, key in (("Fastfood kernels", "fastfood"), ("Hadamard transform", "hadamard"), ("Training step", "train")):
        rows = report[key]
        if not rows:
            continue
        columns = list(dict.fromkeys(k for row in rows for k in row))
        lines += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in rows:
            cells = [f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


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
        print(f"bench_kernels: {reason}. Run it on a CUDA machine, or with TRITON_INTERPRET=1 --smoke.", file=sys.stderr)
        return 2
    if device.type != "cuda" and not args.smoke:
        print("bench_kernels: no GPU here; only --smoke runs on CPU (it measures nothing meaningful).", file=sys.stderr)
        return 2
    if args.smoke:
        sizes, blocks, repeats, dims, batch, length = [5_000], [1 << 10, 1 << 11], 1, [64], 2, 16
    else:
        sizes, blocks, repeats = [BERT_BASE_D, ROBERTA_LARGE_D], [1 << k for k in range(10, 16)], args.repeats
        dims, batch, length = [1_000, 10_000], 32, 128

    report = {"environment": device_description(device), "smoke": args.smoke}
    report["copy"] = copy_bandwidth(device, max(sizes), repeats)
    print(_format_row(report["copy"]), flush=True)
    copy_gbs = report["copy"]["GB/s"]
    report["fastfood"] = [row for i, D in enumerate(sizes)
                          for row in fastfood_rows(device, D, blocks, copy_gbs, repeats, torch_path=i == 0)]
    report["hadamard"] = hadamard_rows(device, sizes[0], blocks, copy_gbs, repeats)
    report["train"] = training_steps(device, dims, batch, length, max(3, repeats // 2), small=args.smoke)

    output = args.output or (RESULTS / "bench_kernels" if not args.smoke else None)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
        output.with_suffix(".md").write_text(markdown(report))
        print(f"wrote {output.with_suffix('.json')} and {output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
