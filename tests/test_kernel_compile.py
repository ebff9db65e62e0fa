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
# The fix-up launch (blocks with a tensor boundary or a partial end, ≈ 65–90 instructions per
# entry from 2^8 up) is a small share of the blocks; a regression guard, not the budget.
FIX_UP_CEILING = 100

pytestmark = [pytest.mark.slow, pytest.mark.kernels]


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


def _fused_float32_forward(rows, branch="with θ₀"):
    chosen = [row for row in rows if row["variant"].startswith("fastfood_forward")
              and row["variant"].endswith(f" fp32 {branch}") and int(row["variant"].split("2^")[1].split()[0]) >= 8]
    assert chosen
    return chosen


def test_fused_forward_instructions_meet_the_bandwidth_budget(rows):
    # The launch over whole single-segment blocks: every block but the few holding a tensor
    # boundary or the last row.
    worst = max(_fused_float32_forward(rows), key=lambda row: row["instructions_per_element"])
    assert worst["instructions_per_element"] <= FUSED_FORWARD_BUDGET, worst


def test_fix_up_blocks_stay_under_the_regression_ceiling(rows):
    worst = max(_fused_float32_forward(rows, "with θ₀, fix-up"), key=lambda row: row["instructions_per_element"])
    assert worst["instructions_per_element"] <= FIX_UP_CEILING, worst
