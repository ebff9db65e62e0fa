"""scripts/bench_kernels.py runs end to end (tiny sizes, Triton interpreter) and writes its report."""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from intrinsic.kernels import interpreting

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_kernels.py"
needs_kernels = pytest.mark.skipif(not (torch.cuda.is_available() or interpreting()),
                                   reason="needs a GPU or TRITON_INTERPRET=1")


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("bench_kernels", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.kernels
@needs_kernels
def test_bench_kernels_smoke_writes_every_section(bench, tmp_path):
    assert bench.main(["--smoke", "--output", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["copy"]["GB/s"] > 0 and report["environment"]["triton"]
    assert {row["op"] for row in report["fastfood"]} == {"project", "fused", "transpose"}
    assert all(row["of_copy"] > 0 and row["speedup_vs_torch"] > 0 and "fallback" in row for row in report["fastfood"])
    # Subspace training runs with the kernel and forced to PyTorch on CUDA; on CPU with PyTorch only.
    backends = ["triton", "torch"] if torch.cuda.is_available() else ["torch"]
    expected = [("full", None)] + [(mode, backend) for mode in ("DID", "SAID") for backend in backends]
    assert [(row["mode"], row["backend"]) for row in report["train"]] == expected
    assert all(row["time_vs_full"] > 0 for row in report["train"][1:])
    assert "# Kernel benchmark on" in (tmp_path / "report.md").read_text()


@pytest.mark.kernels
@needs_kernels
def test_a_run_stopped_part_way_keeps_the_sections_that_finished(bench, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "hadamard_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--smoke", "--output", str(tmp_path / "report")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["copy"] and report["fastfood"] and "hadamard" not in report and "train" not in report
    text = (tmp_path / "report.md").read_text()
    assert "## Fastfood kernels" in text and "## Hadamard" not in text


def test_forced_backend_sets_both_variables_for_torch_and_restores_them(bench, monkeypatch):
    monkeypatch.setenv("INTRINSIC_FASTFOOD_BACKEND", "auto")
    monkeypatch.delenv("INTRINSIC_HADAMARD_BACKEND", raising=False)
    with bench.forced_backend("torch"):
        assert os.environ["INTRINSIC_FASTFOOD_BACKEND"] == os.environ["INTRINSIC_HADAMARD_BACKEND"] == "torch"
    assert os.environ["INTRINSIC_FASTFOOD_BACKEND"] == "auto" and "INTRINSIC_HADAMARD_BACKEND" not in os.environ
    with bench.forced_backend("triton"):
        assert os.environ["INTRINSIC_FASTFOOD_BACKEND"] == "triton" and "INTRINSIC_HADAMARD_BACKEND" not in os.environ
    assert os.environ["INTRINSIC_FASTFOOD_BACKEND"] == "auto"


def test_fallback_warnings_records_runtime_warnings_even_if_shown_before(bench):
    import warnings

    from intrinsic.notices import warn_once

    with pytest.warns(RuntimeWarning):  # shown once: from now on its cache would hide it
        warn_once("backend 'x' is not usable; using 'torch'.")
    with bench.fallback_warnings() as caught:
        warnings.warn("unrelated", UserWarning, stacklevel=1)
        warn_once("backend 'x' is not usable; using 'torch'.")
    assert bench.first_message(caught) == "backend 'x' is not usable; using 'torch'."
    with bench.fallback_warnings() as caught:
        warnings.warn("unrelated", UserWarning, stacklevel=1)
    assert bench.first_message(caught) is None
