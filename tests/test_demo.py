"""The README's quick start: measure-did with an embedded preset, here shrunk to seconds."""

import json

from intrinsic.demo import main, preset
from intrinsic.measure import D90Result


def test_demo_runs_the_preset_and_writes_summary_figure_and_store(shared, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the preset writes under runs/demo/
    code = main(["--max-train-samples", "64", "--dims", "256", "--max-length", "32", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "paraphrase-MiniLM-L3-v2" in printed and "task sst2" in printed and "chance-corrected d90" in printed

    summary = json.loads((tmp_path / "runs/demo/d90.json").read_text())
    assert summary["task"] == "sst2" and summary["train_examples"] == 64
    assert [p["d"] for p in summary["curve"]] == [256]
    assert summary["config"]["lrs"] == [0.03] and summary["config"]["epochs"] == 1
    assert 0.45 < summary["chance"] < 0.55  # SST-2 dev is nearly balanced
    assert (tmp_path / "runs/demo/d90.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "runs/demo/runs.jsonl").read_text().splitlines()) == 2  # full + one subspace run
    assert D90Result.load(tmp_path / "runs/demo/d90.json").to_dict() == summary


def test_demo_flags_override_the_preset():
    # argparse keeps the last value of a repeated option, which is what lets users override the preset
    from intrinsic.cli import build_parser

    args = build_parser().parse_args(preset() + ["--task", "mrpc", "--epochs", "3"])
    assert args.task == "mrpc" and args.epochs == 3 and args.max_length == 64


def test_demo_missing_data_folder_is_one_clear_error(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("measure-did: error:") and "--data-dir" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
