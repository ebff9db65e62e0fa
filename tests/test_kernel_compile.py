"""Every Triton kernel variant the dispatcher can launch compiles for sm_80 and sm_90, without a GPU.

The CPU interpreter accepts code the compiler rejects, so these tests compile for real targets
(``scripts/kernel_resources.py``, in a subprocess without ``TRITON_INTERPRET``) and check what
the hardware imposes: shared memory within the target's limit, no register spills, and the
instructions each output entry costs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

from intrinsic.kernels.resources import FUSED_FORWARD_BUDGET, TARGETS, variants  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kernel_resources.py"
# Where the fused float32 forward stands today (≈ 120–140 on sm_80/sm_90): a regression guard.
# The budget derived in intrinsic/kernels/resources.py is FUSED_FORWARD_BUDGET; see the xfail below.
FUSED_FORWARD_CEILING = 150

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    output = tmp_path_factory.mktemp("resources") / "kernel_resources"
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, str(SCRIPT), "--output", str(output)], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert output.with_suffix(".json").exists(), done.stderr[-2000:]
    return json.loads(output.with_suffix(".json").read_text())["rows"]


def test_every_variant_compiles_for_every_target(rows):
    failed = [f"{row['variant']} {row['target']}: {row['error']}" for row in rows if "error" in row]
    assert not failed, "\n".join(failed)
    assert len(rows) == len(variants()) * len(TARGETS)
    assert {row["target"] for row in rows} == {"sm_80", "sm_90"}


def test_shared_memory_fits_the_target(rows):
    over = [row["variant"] + " " + row["target"] for row in rows if row["shared_bytes"] > row["shared_limit"]]
    assert not over


def test_no_variant_spills_registers(rows):
    spilling = [f"{row['variant']} {row['target']}: {row['spill_instructions']}" for row in rows
                if row["spill_instructions"]]
    assert not spilling, spilling


def _fused_float32_forward(rows):
    chosen = [row for row in rows if row["variant"].startswith("fastfood_forward")
              and " fp32 with θ₀" in row["variant"] and int(row["variant"].split("2^")[1].split()[0]) >= 8]
    assert chosen
    return chosen


def test_fused_forward_instructions_stay_under_the_regression_ceiling(rows):
    worst = max(_fused_float32_forward(rows), key=lambda row: row["instructions_per_element"])
    assert worst["instructions_per_element"] <= FUSED_FORWARD_CEILING, worst


@pytest.mark.xfail(strict=True, reason="the fused forward executes ≈ 120–140 instructions per entry; "
                                       f"the bandwidth budget is {FUSED_FORWARD_BUDGET}")
def test_fused_forward_instructions_meet_the_bandwidth_budget(rows):
    worst = max(_fused_float32_forward(rows), key=lambda row: row["instructions_per_element"])
    assert worst["instructions_per_element"] <= FUSED_FORWARD_BUDGET, worst
