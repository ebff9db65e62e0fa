"""scripts/gpu_check.py: its refusal without a GPU, and its helpers (no GPU needed)."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_it_prints_one_line_and_exits_2(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--output", str(tmp_path / "summary")]) == 2
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and "needs a CUDA GPU" in lines[0] and "Traceback" not in captured.err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_the_default_invocation_exits_2(gpu_check, capsys):
    assert gpu_check.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_relative_error_is_the_max_gap_over_the_max_reference(gpu_check):
    reference = torch.tensor([1.0, -4.0, 2.0])
    assert gpu_check.relative_error(reference, reference) == 0.0
    assert gpu_check.relative_error(torch.tensor([1.0, -2.0, 2.0]), reference) == pytest.approx(0.5)
    assert gpu_check.relative_error(torch.zeros(3, dtype=torch.float64), torch.zeros(3)) == 0.0
    assert gpu_check.relative_error(torch.ones(3), torch.zeros(3)) == float("inf")


class _Matrix:
    """A projection given by a matrix, whose rmatvec multiplies by ``transpose_factor`` · Aᵀ."""

    def __init__(self, A, transpose_factor=1.0):
        self.A, self.factor = A, transpose_factor

    def matvec(self, x):
        return self.A @ x

    def rmatvec(self, y):
        return self.factor * self.A.T @ y


def test_adjoint_gap_vanishes_for_a_transpose_and_not_otherwise(gpu_check):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(50, 7, generator=g, dtype=torch.float64)
    x, y = torch.randn(7, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    assert gpu_check.adjoint_gap(_Matrix(A), x, y) < 1e-14
    wrong = gpu_check.adjoint_gap(_Matrix(A, transpose_factor=2.0), x, y)
    assert wrong == pytest.approx(abs(torch.dot(A @ x, y).item()) / ((A @ x).norm() * y.norm()).item())


def test_adjoint_gap_of_the_torch_fastfood_backend_is_rounding(gpu_check):
    from intrinsic.projections import FastfoodProjection

    P = FastfoodProjection(100, [3000, 768, 1000, 232], seed=0, backend="torch")
    x, y = torch.randn(100, dtype=torch.float64), torch.randn(5000, dtype=torch.float64)
    assert gpu_check.adjoint_gap(P, x, y) < 1e-12


def test_bert_base_segment_sizes_are_those_of_bert_base_with_two_labels(gpu_check):
    from transformers import BertConfig, BertForSequenceClassification

    with torch.device("meta"):  # shapes only, no memory
        model = BertForSequenceClassification(BertConfig(num_labels=2))
    sizes = gpu_check.bert_base_segment_sizes()
    assert sizes == [p.numel() for p in model.parameters()]
    assert len(sizes) == 201 and sum(sizes) == gpu_check.bench.BERT_BASE_D == 109_483_778


@pytest.mark.parametrize(("output", "counts"), [
    ("....\n10 passed in 5.10s\n", {"passed": 10}),
    ("F.\n=== 1 failed, 10 passed, 2 skipped, 3 warnings in 5.10s ===\n",
     {"failed": 1, "passed": 10, "skipped": 2, "warning": 3}),
    ("1 passed means nothing here\n2 errors in 0.40s\n", {"error": 2}),
    ("ImportError while loading conftest\n", {}),
])
def test_parse_pytest_counts_reads_the_final_summary_line(gpu_check, output, counts):
    assert gpu_check.parse_pytest_counts(output) == counts


def test_judged_passes_only_correct_kernel_results(gpu_check):
    row = {"backend": "triton", "rel_error": 1e-7, "warnings": None}
    assert gpu_check.judged(row, "rel_error", 1e-4)["ok"]
    assert not gpu_check.judged({**row, "rel_error": 1e-3}, "rel_error", 1e-4)["ok"]
    assert not gpu_check.judged({"error": "OutOfResources: shared memory"}, "rel_error", 1e-4)["ok"]
    silent = {**row, "backend": "torch"}
    warned = {**silent, "warnings": "RuntimeWarning: Fastfood backend 'triton' is not usable"}
    assert not gpu_check.judged(warned, "rel_error", 1e-4)["ok"]  # the scale checks need the kernel
    assert gpu_check.judged(warned, "rel_error", 1e-4, warned_fallback_ok=True)["ok"]  # a probe's finding
    assert not gpu_check.judged(silent, "rel_error", 1e-4, warned_fallback_ok=True)["ok"]


def test_attempt_turns_an_exception_into_an_error_row(gpu_check):
    def fails():
        raise RuntimeError("out of resources")

    assert gpu_check.attempt(lambda: {"gap": 0.0}) == {"gap": 0.0}
    assert gpu_check.attempt(fails) == {"error": "RuntimeError: out of resources"}


def test_triton_kernel_names_lists_the_jit_functions_a_module_defines(gpu_check, tmp_path, monkeypatch):
    pytest.importorskip("triton")
    (tmp_path / "other_kernels.py").write_text(
        "import triton\n\n@triton.jit\ndef imported_kernel(x):\n    pass\n")
    (tmp_path / "some_kernels.py").write_text(
        "import triton\nfrom other_kernels import imported_kernel\n\n"
        "@triton.jit\ndef _forward_kernel(x_ptr):\n    pass\n\n"
        "def launcher():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import some_kernels

    assert gpu_check.triton_kernel_names(some_kernels) == {"_forward_kernel"}
    for name in ("some_kernels", "other_kernels"):
        sys.modules.pop(name, None)


def test_summary_markdown_has_a_section_per_stage_and_tables_for_rows(gpu_check):
    report = {"stages": {
        "environment": {"status": "passed", "seconds": 0.1, "torch": "2.5.0", "capability": "9.0"},
        "tests": {"status": "skipped"},
        "probes": {"status": "FAILED", "seconds": 12.0, "fell_back_to_torch": None,
                   "rows": [{"dtype": "float64", "L": 32768, "op": "matvec", "error": "OutOfResources"}]},
    }}
    text = gpu_check.summary_markdown(report)
    assert "## environment: passed" in text and "- capability: 9.0" in text
    assert "## tests: skipped" in text and "## probes: FAILED" in text
    assert "| dtype | L | op | error |" in text and "| float64 | 32768 | matvec | OutOfResources |" in text


def test_a_stage_that_raises_is_recorded_and_the_summary_written(gpu_check, tmp_path):
    args = argparse.Namespace(output=tmp_path / "summary")
    report = {"stages": {}}

    def broken(args, device):
        raise ValueError("boom")

    gpu_check.run_stage("probes", broken, args, torch.device("cpu"), report)
    gpu_check.run_stage("scale", lambda args, device: {"ok": False, "max_rel_error": 0.5}, args, None, report)
    gpu_check.run_stage("environment", lambda args, device: {"torch": "x"}, args, None, report)
    written = json.loads((tmp_path / "summary.json").read_text())
    probes = written["stages"]["probes"]
    assert probes["status"] == "ERROR" and "ValueError: boom" in probes["error"]
    assert written["stages"]["scale"]["status"] == "FAILED" and "ok" not in written["stages"]["scale"]
    assert written["stages"]["environment"]["status"] == "passed"
    assert "## probes: ERROR" in (tmp_path / "summary.md").read_text()


def test_run_streaming_returns_the_output_and_stops_at_the_timeout(gpu_check, capsys):
    returncode, output, timed_out = gpu_check.run_streaming([sys.executable, "-c", "print('hello')"], timeout=60)
    assert (returncode, output, timed_out) == (0, "hello\n", False)
    assert "  hello" in capsys.readouterr().out
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    returncode, _, timed_out = gpu_check.run_streaming(sleeper, timeout=0.5)
    assert timed_out and returncode != 0


def test_quick_mode_probes_fewer_sizes(gpu_check):
    full, quick = gpu_check.parse_args([]), gpu_check.parse_args(["--quick", "--skip-bench"])
    assert full.probe_log_blocks == list(range(10, 16)) and full.scale_dims == [1000, 4000]
    assert set(quick.probe_log_blocks) < set(full.probe_log_blocks) and quick.scale_dims == [1000]
    assert quick.skip_bench and not quick.skip_tests


@pytest.mark.parametrize(("launched", "warned", "backend"), [
    (["_forward_kernel", "void at::native::vectorized_elementwise_kernel"], False, "triton"),
    (["_transpose_kernel_0d1d"], False, "triton"),  # older Triton suffixes the signature
    (["void at::native::vectorized_elementwise_kernel"], False, "torch"),  # a silent fallback
    (["_forward_kernel"], True, "torch"),  # the kernel's probe launched, failed, and it warned
    ([], False, "unknown"),  # the profiler saw nothing
])
def test_classify_backend(gpu_check, launched, warned, backend):
    assert gpu_check.classify_backend(launched, {"_forward_kernel", "_transpose_kernel"}, warned) == backend


def test_fallbacks_names_the_cases_pytorch_computed(gpu_check):
    rows = [{"dtype": "float32", "L": 1024, "op": "matvec", "backend": "triton"},
            {"dtype": "float64", "L": 32768, "op": "rmatvec", "backend": "torch"},
            {"segments": 201, "d": 8192, "op": "add_to", "backend": "torch"},
            {"op": "matvec", "error": "OutOfResources"}]
    assert gpu_check.fallbacks(rows) == ["dtype=float64, L=32768, op=rmatvec", "segments=201, d=8192, op=add_to"]
    assert gpu_check.fallbacks(rows[:1]) is None
