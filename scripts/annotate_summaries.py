"""Per-seed scores, intervals and the selection mode for the summaries measured before the protocol.

    python scripts/annotate_summaries.py

The summaries under ``figures/`` written before held-out selection kept only each d's mean and
standard deviation. Their runs are all in their stores under ``results/``, so this reads, for each
curve point, the per-seed dev scores at the learning rate the point chose, checks that their mean
is the summary's, and adds what every result now carries: ``scores``, ``selection: "dev"`` (the
rate was chosen on dev, which also reports), and the per-seed d90s, interval, monotone-fit d90 and
one-SEM flag (``intrinsic.measure.curve_uncertainty``). Nothing is trained; the d90s do not
change. A summary already carrying its selection mode is left as it is.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from intrinsic.measure import curve_uncertainty  # noqa: E402
from intrinsic.models import ModelSpec  # noqa: E402

STORES = {  # summary → the store its runs are in
    "figures/sst2-minilm-l3-did.json": "results/sst2-minilm-l3.jsonl",
    "figures/sst2-minilm-l3-said.json": "results/sst2-minilm-l3.jsonl",
    "figures/mrpc-minilm-l3-did.json": "results/mrpc-minilm-l3-did.jsonl",
    "figures/mrpc-minilm-l3-said.json": "results/mrpc-minilm-l3-said.jsonl",
    "figures/study/trajectory-sst2.json": "results/study/sst2.jsonl",
    "figures/study/sizes-sst2.json": "results/study/sst2.jsonl",
    "figures/study/minilm-sst2.json": "results/study/sst2.jsonl",
    "figures/study/tiny-mrpc.json": "results/study/mrpc.jsonl",
}
DEV_NOTE = ("learning rates were chosen on dev, the split every number here is measured on: optimistic (measured "
            "before held-out selection; per-seed scores and intervals added from its run store)")


def seed_scores(records: list[dict], result: dict, point: dict) -> list[float]:
    """The dev metric of each seed's run at ``point`` (its d and chosen lr), in the order of the seeds."""
    config, metric = result["config"], result["metric"]
    model = ModelSpec.parse(result["model"]).store_name() if Path(result["model"]).exists() else result["model"]
    scores = []
    for seed in config["seeds"]:
        matches = [r for r in records
                   if r["config"]["model"] == model and r["config"]["task"] == result["task"]
                   and r["config"]["max_train_samples"] == config["max_train_samples"]
                   and r["config"]["train"]["epochs"] == config["epochs"]
                   and r["config"]["train"]["max_length"] == config["max_length"]
                   and r["config"]["train"]["lr"] == point["lr"] and r["config"]["train"]["seed"] == seed
                   and (r["config"]["subspace"] or {}).get("d") == point["d"]
                   and (r["config"]["subspace"] or {}).get("said") == config["said"]
                   and (r["config"]["subspace"] or {}).get("projection") == config["projection"]
                   and r["result"]["status"] == "ok"]
        if not matches:
            raise SystemExit(f"no stored run for {result['model']} d={point['d']} lr={point['lr']} seed={seed}")
        scores.append(max(matches, key=lambda r: r["finished_at"])["result"]["metrics"][metric])
    if not math.isclose(statistics.mean(scores), point["mean"], abs_tol=1e-9):
        raise SystemExit(f"{result['model']} d={point['d']}: stored runs average {statistics.mean(scores)}, "
                         f"the summary says {point['mean']}: not the runs it was computed from")
    return scores


def annotate(result: dict, records: list[dict]) -> bool:
    if result.get("selection") is not None:
        return False
    for point in result["curve"]:
        point["scores"] = seed_scores(records, result, point)
    notes = result.setdefault("notes", [])
    kinds = (("d90", result["d90"], result["target"]),
             ("corrected", result["d90_chance_corrected"], result["target_chance_corrected"]))
    result["uncertainty"] = {kind: curve_uncertainty(result["curve"], result["config"]["seeds"],
                                                     result["config"]["resolution"], d90, target, notes, kind)
                             for kind, d90, target in kinds if target > result["chance"]}
    result["selection"] = "dev"
    notes.insert(0, DEV_NOTE)
    return True


def main() -> int:
    for summary, store in STORES.items():
        path = ROOT / summary
        records = [json.loads(line) for line in (ROOT / store).read_text().splitlines() if line.strip()]
        data = json.loads(path.read_text())
        results = data["results"] if "results" in data else [data]
        changed = [annotate(result, records) for result in results]
        if any(changed):
            path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"{summary}: {'annotated' if any(changed) else 'already carries its selection mode'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
