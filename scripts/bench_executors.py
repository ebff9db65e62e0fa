"""The Ray executor against the serial one: measured wall time here, and the speed-up a cluster
would give, simulated from the real search.

    python scripts/bench_executors.py time        # demo preset with 2 seeds: serial, then --executor ray
    python scripts/bench_executors.py simulate    # replay stored measurements on N simulated workers

``time`` runs the quick-start preset (``intrinsic.demo``) with two seeds, first with the serial
executor, then with ``--executor ray --cpus-per-run 1``, each into a fresh store, back to back on
this machine, and times a Ray local cluster's start-up (``ray.init`` and a first task) apart.
Measure on an otherwise idle machine: both executors share its cores.

``simulate`` replays measurements whose runs are all stored (the committed run stores) through
the real driver and plans on a simulated executor with N workers, where every run takes one
unit of time: the makespan counts what the search's rounds allow to run side by side (all lr ×
seed runs of a round, both targets' searches, and several models at once). Speed-up = runs /
makespan. Real runs differ in length, so this is an upper bound for equal runs, and ignores the
start-up and the transfer of each task.

Results go to ``results/bench/executors.json`` with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

OUT = ROOT / "results" / "bench" / "executors.json"
WORKERS = (1, 2, 4, 8, 16, 32, 64)


def save(part: str, data: dict) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(OUT.read_text()) if OUT.is_file() else {}
    existing[part] = data
    OUT.write_text(json.dumps(existing, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} [{part}]")


def machine() -> dict:
    import torch

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def timed(command: list[str]) -> float:
    start = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.time() - start


def time_executors() -> None:
    from intrinsic import demo

    base = [sys.executable, "-m", "intrinsic.cli", *demo.preset(), "--seeds", "0", "1", "--no-progress"]
    startup = subprocess.run([sys.executable, "-c", (
        "import os, time; os.environ.setdefault('RAY_AUTH_MODE', 'disabled'); t = time.time(); import ray; "
        "ray.init(logging_level='ERROR', include_dashboard=False); a = time.time() - t; "
        "ray.get(ray.remote(lambda: 1).remote()); print(a, time.time() - t)")],
        check=True, capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        serial = timed([*base, "--results", f"{tmp}/serial.jsonl", "--output", f"{tmp}/serial.json"])
        spread = timed([*base, "--results", f"{tmp}/ray.jsonl", "--output", f"{tmp}/ray.json",
                        "--executor", "ray", "--cpus-per-run", "1"])
        a, b = (json.loads(Path(f"{tmp}/{name}.json").read_text()) for name in ("serial", "ray"))
        runs = sum(1 for _ in open(f"{tmp}/serial.jsonl"))
    same = a["curve"] == b["curve"] and (a["d90"], a["d90_chance_corrected"]) == (b["d90"], b["d90_chance_corrected"])
    data = {"machine": machine(), "preset": "intrinsic.demo SETTINGS + --seeds 0 1", "runs": runs,
            "serial_s": round(serial, 1), "ray_s": round(spread, 1), "speedup": round(serial / spread, 2),
            "ray_init_s": round(float(startup[0]), 1), "ray_init_and_first_task_s": round(float(startup[1]), 1),
            "same_curve_and_d90s": same, "d90": a["d90"], "d90_chance_corrected": a["d90_chance_corrected"]}
    print(json.dumps(data, indent=2))
    save("time", data)


class SimulatedExecutor:
    """N workers; every run takes one time unit; results come from ``source`` (a complete store)."""

    parallel = True

    def __init__(self, workers: int, source):
        self.workers, self.source = workers, source
        self.clock, self.queue, self.running, self.handles = 0.0, [], [], 0

    def submit(self, runner, request):
        result = self.source.get(runner.config_of(request))
        if result is None:
            raise SystemExit(f"{runner.config.model}: {request} is not in the store; measure it first")
        self.handles += 1
        self.queue.append((self.handles, result))
        return self.handles

    def next_finished(self):
        from intrinsic.executors import Finished

        while self.queue and len(self.running) < self.workers:
            handle, result = self.queue.pop(0)
            heapq.heappush(self.running, (self.clock + 1.0, handle, result))
        self.clock, handle, result = heapq.heappop(self.running)
        return handle, Finished(result)


def simulate() -> None:
    from study import models_of

    from intrinsic.executors import drive
    from intrinsic.measure import MeasureConfig, d90_plan
    from intrinsic.paths import shared_path
    from intrinsic.runner import Runner
    from intrinsic.store import ResultStore

    cases = {"protocol-said": "one measurement (MiniLM-L3, SAID, 3 seeds × 2 lrs)",
             "protocol-trajectory": "four checkpoints at once (tiny MLM xs, 3 seeds × 2 lrs)"}
    data = {"machine": machine(), "unit": "one run", "cases": {}}
    for part, what in cases.items():
        models, settings = models_of(part, ROOT / "runs" / "mlm", "xs")
        config = replace(MeasureConfig(model=models[0], task="sst2", data_dir=str(shared_path("data", "glue"))),
                         **settings)
        source = ResultStore(ROOT / "results" / "study" / "protocol" / f"{part}-sst2.jsonl")
        rows = []
        for workers in WORKERS:
            with tempfile.TemporaryDirectory() as tmp:
                empty = ResultStore(Path(tmp) / "runs.jsonl")
                runners = [Runner(replace(config, model=m), empty, progress=False) for m in models]
                executor = SimulatedExecutor(workers, source)
                drive([(r, d90_plan(r)) for r in runners], executor, progress=False)
                runs = executor.handles
            rows.append({"workers": workers, "runs": runs, "makespan": executor.clock,
                         "speedup": round(runs / executor.clock, 2)})
            print(f"{part}: {workers:3d} workers: {runs} runs in {executor.clock:g} run-times, "
                  f"speed-up {runs / executor.clock:.2f}", flush=True)
        data["cases"][part] = {"what": what, "rows": rows}
    save("simulate", data)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("time", "simulate"))
    args = p.parse_args(argv)
    time_executors() if args.part == "time" else simulate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
