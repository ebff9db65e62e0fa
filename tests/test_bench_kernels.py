"""scripts/bench_kernels.py runs end to end (tiny sizes, Triton interpreter) and writes its report."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from intrinsic.kernels import interpreting

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_kernels.py"


@pytest.mark.skipif(not (torch.cuda.is_available() or interpreting()), reason="needs a GPU or TRITON_INTERPRET=1")
def test_bench_kernels_smoke_writes_every_section(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke", "--output", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["copy"]["GB/s"] > 0 and report["environment"]["triton"]
    assert {row["op"] for row in report["fastfood"]} == {"project", "fused", "transpose"}
    assert all(row["of_copy"] > 0 for row in report["fastfood"])
    assert [row["mode"] for row in report["train"]] == ["full", "DID", "SAID"]
    assert all(row["time_vs_full"] > 0 for row in report["train"][1:])
    assert "# Kernel benchmark on" in (tmp_path / "report.md").read_text()
