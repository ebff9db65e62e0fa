"""CPU cost of each projection's forward + backward at D = 22.7 M (all-MiniLM-L6-v2).

    python scripts/bench_projection.py            # writes scripts/results/bench_projection.{json,md}

Every configuration runs in a fresh subprocess, so that peak memory is its own. Peak memory
is the largest resident-set growth seen while one more forward + backward runs (sampled every
millisecond from /proc, with glibc set to return freed blocks ≥ 64 KiB at once), and time is
the median wall time of forward + backward. Both are printed as ratios to a ``torch.clone`` of
D float32 numbers measured the same way in the same run. The parameter layout is that of
all-MiniLM-L6-v2, built on the meta device (no weights).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = [
    ("fastfood", "stacked"),
    ("fastfood", "per_tensor"),
    ("sparse", None),
    ("dense", None),
]


def minilm_l6_segment_sizes() -> list[int]:
    """Parameter tensor sizes of all-MiniLM-L6-v2 (BERT, 6 × 384, vocabulary 30522)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
        intermediate_size=1536, max_position_embeddings=512,
    )
    with torch.device("meta"):
        model = BertModel(config)
    return [p.numel() for p in model.parameters()]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_growth(fn) -> int:
    """Largest resident-set growth over the baseline while ``fn()`` runs."""
    baseline, peak, done = rss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], rss_bytes()) - baseline


def measure_one(projection: str, layout: str | None, d: int, repeats: int, mode: str) -> dict:
    """Runs in the child process: build, then time and measure forward + backward."""
    import torch

    from intrinsic.projections import make_projection

    sizes = minilm_l6_segment_sizes()
    D = sum(sizes)
    if projection == "clone":
        source = torch.randn(D)
        run = lambda: source.clone()  # noqa: E731
        state_bytes, build_s = 0, 0.0
    else:
        options = {"layout": layout} if layout else {}
        start = time.perf_counter()
        P = make_projection(projection, d, sizes, seed=0, **options)
        build_s = time.perf_counter() - start
        state_bytes = P.state_nbytes()
        theta = torch.zeros(d, requires_grad=True)
        grad_out = torch.randn(D)

        def run():
            P(theta).backward(grad_out)
            theta.grad = None

    times, peak = [], None
    if mode in ("peak", "both"):
        start = time.perf_counter()
        peak = peak_rss_growth(run)  # first call, in a fresh process
        times.append(time.perf_counter() - start)
    if mode == "time":
        if repeats > 1:
            run()  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {
        "projection": projection, "layout": layout, "d": d, "D": D,
        "seconds": statistics.median(times), "repeats": len(times),
        "peak_bytes": peak, "state_bytes": state_bytes, "build_seconds": build_s,
    }


def run_child(projection, layout, d, repeats, mode) -> dict:
    """One measurement in a fresh process.

    mode "time": median of ``repeats`` after a warm-up, default allocator. Mode "peak" (or
    "both", time of that one call too): glibc is told by MALLOC_MMAP_THRESHOLD_ to return
    every freed block ≥ 64 KiB to the OS at once, so the resident set follows live tensors
    (glibc's adaptive default keeps freed blocks of up to 32 MiB and made peaks vary 1.5×).
    """
    cmd = [sys.executable, __file__, "--child", json.dumps([projection, layout, d, repeats, mode])]
    env = os.environ if mode == "time" else {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(projection, layout, d, repeats) -> dict:
    """Time and peak of one configuration; one run for both when ``repeats`` is 1."""
    if repeats == 1:
        return run_child(projection, layout, d, 1, "both")
    row = run_child(projection, layout, d, repeats, "time")
    row["peak_bytes"] = run_child(projection, layout, d, 1, "peak")["peak_bytes"]
    return row


def device_description() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"device": "cpu", "cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median), after one warm-up")
    parser.add_argument(
        "--dense-max-entries", type=float, default=3e10,
        help="skip the dense projection when D·d exceeds this (it regenerates D·d Gaussians per call)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_projection")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_one(*json.loads(args.child))))
        return

    baseline = measure("clone", None, 0, max(args.repeats, 5))
    D = baseline["D"]
    clone_bytes = D * 4
    print(f"D = {D:,}; torch.clone of D floats: {baseline['seconds'] * 1e3:.1f} ms, "
          f"peak growth {baseline['peak_bytes'] / 2**20:.0f} MiB", flush=True)
    rows = []
    for d in args.dims:
        for projection, layout in CONFIGS:
            name = projection + (f"/{layout}" if layout else "")
            if projection == "dense" and D * d > args.dense_max_entries:
                rows.append({"projection": projection, "layout": layout, "d": d, "D": D,
                             "skipped": f"D·d = {D * d:.2e} > --dense-max-entries {args.dense_max_entries:.0e}"})
                print(f"{name:22s} d={d:<6d} skipped ({rows[-1]['skipped']})", flush=True)
                continue
            repeats = 1 if projection == "dense" else args.repeats
            row = measure(projection, layout, d, repeats)
            row["time_ratio"] = row["seconds"] / baseline["seconds"]
            row["peak_ratio"] = row["peak_bytes"] / baseline["peak_bytes"]
            row["state_ratio"] = row["state_bytes"] / clone_bytes
            rows.append(row)
            print(f"{name:22s} d={d:<6d} {row['seconds']:8.3f} s  ×{row['time_ratio']:8.1f} clone time  "
                  f"peak ×{row['peak_ratio']:5.2f}  state ×{row['state_ratio']:5.2f}  "
                  f"(build {row['build_seconds']:.1f} s)", flush=True)

    report = {"benchmark": "projection forward+backward", "baseline": baseline,
              "host": device_description(), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {args.output.with_suffix('.json')} and .md")


def markdown(report: dict) -> str:
    host, base = report["host"], report["baseline"]
    lines = [
        "# Projection benchmark: forward + backward on CPU",
        "",
        f"Host: {host['cpu']}, {host['threads']} threads, torch {host['torch']}. "
        f"D = {base['D']:,} (all-MiniLM-L6-v2 layout).",
        f"Baseline `torch.clone` of D float32: {base['seconds'] * 1e3:.1f} ms, "
        f"peak {base['peak_bytes'] / 2**20:.0f} MiB.",
        "Time ratio: median forward+backward time / clone time. Peak ratio: peak resident growth "
        "during forward+backward / clone's. State ratio: persistent random state / 4·D bytes.",
        "",
        "| projection | layout | d | time (s) | time / clone | peak / clone | state / clone | build (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['projection']} | {r['layout'] or '-'} | {r['d']} | not run: {r['skipped']} | | | | |")
            continue
        lines.append(
            f"| {r['projection']} | {r['layout'] or '-'} | {r['d']} | {r['seconds']:.3f} | "
            f"{r['time_ratio']:.1f} | {r['peak_ratio']:.2f} | {r['state_ratio']:.2f} | {r['build_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
