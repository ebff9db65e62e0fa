"""measure-did end to end on a tiny random BERT (built here) with the real tokenizer and MRPC."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest

from intrinsic.cli import OPTIONS, build_parser, cli_flag, config_from_args, defaults_table, main
from intrinsic.errors import ConfigError
from intrinsic.measure import MeasureConfig
from intrinsic.methods import METHOD_NAMES, get_method
from intrinsic.store import ResultStore

from .conftest import save_tiny_bert_with_minilm_tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model_dir(shared, tmp_path_factory):
    return save_tiny_bert_with_minilm_tokenizer(tmp_path_factory.mktemp("tiny-bert"), shared)


def base_args(model_dir, shared, tmp_path, *extra):
    return ["--model", str(model_dir), "--task", "mrpc", "--data-dir", str(shared / "data" / "glue"),
            "--max-train-samples", "64", "--epochs", "1", "--max-length", "48", "--lr", "3e-2",
            "--full-lr", "1e-3", "--results", str(tmp_path / "runs.jsonl"), "--no-progress", *extra]


def test_search_end_to_end_writes_a_complete_summary(tiny_model_dir, shared, tmp_path, capsys):
    out = tmp_path / "summary.json"
    code = main(base_args(tiny_model_dir, shared, tmp_path, "--start-d", "16", "--max-d", "512",
                          "--seeds", "0", "1", "--output", str(out)))
    assert code == 0
    printed = capsys.readouterr().out
    assert "chance-corrected d90" in printed and "full fine-tuning accuracy" in printed
    summary = json.loads(out.read_text())
    for key in ("model", "task", "D", "d90", "d90_chance_corrected", "threshold", "full_metric", "chance",
                "curve", "config", "versions", "bound_term"):
        assert key in summary
    assert summary["chance"] == pytest.approx(0.684, abs=5e-4)
    assert summary["config"]["projection"] == "fastfood" and summary["config"]["layout"] == "stacked"
    assert summary["config"]["seeds"] == [0, 1]
    # A tiny random BERT does not beat the majority class on MRPC (0.684) with 64 examples: then
    # no subspace has anything to reach, both d90s are undefined, and no subspace run is spent.
    assert summary["full_metric"] <= summary["chance"]
    assert summary["d90"] is None and summary["d90_chance_corrected"] is None and summary["curve"] == []
    assert "does not beat chance" in summary["notes"][0] and "note: full fine-tuning" in printed
    assert len(ResultStore(tmp_path / "runs.jsonl")) == 2  # the full runs of the two seeds, nothing else

    # Explicit dims still measure every (d, seed) exactly once, reusing the two full runs.
    assert main(base_args(tiny_model_dir, shared, tmp_path, "--dims", "16", "64", "--seeds", "0", "1",
                          "--output", str(out))) == 0
    summary = json.loads(out.read_text())
    assert [p["d"] for p in summary["curve"]] == [16, 64] and all(p["n"] == 2 for p in summary["curve"])
    assert len(ResultStore(tmp_path / "runs.jsonl")) == 2 + 2 * 2


def test_explicit_dims_and_a_rerun_that_repeats_nothing(tiny_model_dir, shared, tmp_path, capsys):
    args = base_args(tiny_model_dir, shared, tmp_path, "--dims", "8", "64", "--said",
                     "--output", str(tmp_path / "s.json"))
    assert main(args) == 0
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2  # full fine-tuning and d=64
    curve = json.loads((tmp_path / "s.json").read_text())["curve"]
    assert [p["d"] for p in curve] == [64]  # SAID: d=8 ≤ m is no subspace
    assert main(args) == 0
    assert (tmp_path / "runs.jsonl").read_text().splitlines() == lines


def test_the_same_folders_spelt_relatively_reuse_the_stored_runs(tiny_model_dir, shared, tmp_path, monkeypatch):
    args = base_args(tiny_model_dir, shared, tmp_path, "--dims", "64")
    assert main(args) == 0
    lines = (tmp_path / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 2  # full fine-tuning and d=64
    monkeypatch.chdir(tiny_model_dir.parent)
    relative = ["--model", f"./{tiny_model_dir.name}", "--data-dir",
                os.path.relpath(shared / "data" / "glue", tiny_model_dir.parent)]
    assert main(args + relative) == 0  # argparse: the later --model and --data-dir win
    assert (tmp_path / "runs.jsonl").read_text().splitlines() == lines


@pytest.mark.slow
def test_kill_minus_9_loses_at_most_the_run_in_flight(tiny_model_dir, shared, tmp_path):
    store_path = tmp_path / "runs.jsonl"
    args = base_args(tiny_model_dir, shared, tmp_path, "--dims", *[str(d) for d in range(10, 130, 10)],
                     "--max-train-samples", "256")
    command = [sys.executable, "-m", "intrinsic.cli", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if store_path.exists() and len(store_path.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    before = [json.loads(line) for line in store_path.read_text().splitlines() if line.strip()]
    assert 3 <= len(before) < 13

    assert subprocess.run(command, capture_output=True).returncode == 0
    after = [json.loads(line) for line in store_path.read_text().splitlines() if line.strip()]
    keys = [r["key"] for r in after]
    assert len(keys) == len(set(keys)) == 13  # 1 full run + 12 dims, none run twice
    assert after[: len(before)] == before  # finished runs were kept, not redone


@pytest.mark.parametrize("case", ["unknown task", "unknown model", "model revision", "missing data folder", "d <= 0",
                                  "unwritable output", "malformed tsv", "figure format"])
def test_bad_input_is_one_line_and_a_non_zero_exit(case, tiny_model_dir, shared, tmp_path, capfd):
    data_dir = shared / "data" / "glue"
    args = {"--model": str(tiny_model_dir), "--task": "mrpc", "--data-dir": str(data_dir),
            "--results": str(tmp_path / "runs.jsonl")}
    extra = ["--dims", "16", "--epochs", "1", "--max-train-samples", "8", "--no-progress"]
    expected = {
        "unknown task": "unknown task 'mrcp'",
        "unknown model": "cannot load model",
        "model revision": "--model 'roberta-base@': write a revision as NAME@REVISION",
        "missing data folder": "--data-dir must hold GLUE's task folders",
        "d <= 0": "--dims must be positive integers",
        "unwritable output": "cannot write --output",
        "malformed tsv": "expected at least 5 tab-separated fields",
        "figure format": "--figure curve.jpg: use one of .png, .svg, .pdf",
    }[case]
    if case == "unknown task":
        args["--task"] = "mrcp"
    elif case == "unknown model":
        args["--model"] = str(tmp_path / "no-such-model")
    elif case == "model revision":
        args["--model"] = "roberta-base@"
    elif case == "missing data folder":
        args["--data-dir"] = str(tmp_path / "no-glue")
    elif case == "d <= 0":
        extra[1] = "0"
    elif case == "unwritable output":
        (tmp_path / "file").write_text("x")
        extra += ["--output", str(tmp_path / "file" / "summary.json")]
    elif case == "figure format":
        extra += ["--figure", "curve.jpg"]
    elif case == "malformed tsv":
        (tmp_path / "glue" / "MRPC").mkdir(parents=True)
        for split in ("train", "dev"):
            header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
            (tmp_path / "glue" / "MRPC" / f"{split}.tsv").write_text(header + "1\tonly\n")
        args["--data-dir"] = str(tmp_path / "glue")
    code = main([x for kv in args.items() for x in kv] + extra)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("measure-did: error:") and expected in err[0]


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--projection", "--said", "--no-said", "--dims", "--seeds", "--threshold", "--max-train-samples",
                 "--epochs", "--lr", "--device", "--output", "--figure", "--results", "--data-dir", "--layout",
                 "--normalization", "--method", "--head"):
        assert flag in text
    assert "(default: did (said with --said))" in text and "(default: D for d," in text  # the fields' metadata


def test_readme_defaults_table_is_the_one_the_config_fields_give():
    text = (ROOT / "README.md").read_text()
    start, end = "<!-- defaults-table:start -->\n", "<!-- defaults-table:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, "README.md lost its defaults-table markers"
    table = text[text.index(start) + len(start):text.index(end)]
    assert table == defaults_table(), (
        "README.md's defaults table differs from MeasureConfig's fields: paste the output of "
        "python -c 'from intrinsic.cli import defaults_table; print(defaults_table(), end=\"\")' between its markers")


def test_defaults_table_has_one_row_per_setting_with_its_default():
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in defaults_table().splitlines()[2:]}
    assert list(rows) == [f"`{cli_flag(f)}`" + (", `--no-said`" if f.name == "said" else "")
                          for f in fields(MeasureConfig)] + [f"`{o.flag}`" for o in OPTIONS]
    assert rows["`--lr`"][1:3] == ["`lrs`", "the method's: 1e-2 3e-2 1e-1 for did/said"]
    assert rows["`--full-lr`"][1:3] == ["`full_lr`", "`2e-5`"]
    assert rows["`--max-d`"][2].startswith("D for d") and rows["`--model`"][2] == "required"
    assert MeasureConfig(model="m", task="sst2").learning_rates == [1e-2, 3e-2, 1e-1]  # what the row says


def test_parsed_flags_are_the_config_fields():
    parse = build_parser().parse_args
    assert config_from_args(parse(["--model", "m", "--task", "sst2"])) == MeasureConfig(model="m", task="sst2")
    config = config_from_args(parse(["--model", "m", "n", "--task", "sst2", "--lr", "0.5", "--full-lr", "1e-4",
                                     "--said", "--no-said", "--max-d", "512", "--dims", "8"]))
    assert config == MeasureConfig(model="m", task="sst2", lrs=[0.5], full_lr=1e-4, said=False, max_d=512, dims=[8])
    several = config_from_args(parse(["--model", "m", "--task", "sst2", "--full-lr", "1e-4", "1e-3"]))
    assert several.full_lr == [1e-4, 1e-3]


@pytest.mark.parametrize("argument, value, flags, problem", [
    ("lrs", [0.0], ["--lr", "0"], "must be positive learning rates, got [0.0]"),
    ("full_lr", 0.0, ["--full-lr", "0"], "must be positive learning rates, got 0.0"),
    ("start_d", 0, ["--start-d", "0"], "must be at least 1, got 0"),
    ("max_train_samples", 0, ["--max-train-samples", "0"], "must be at least 1, got 0"),
    ("threshold", 1.5, ["--threshold", "1.5"], "must be in (0, 1], got 1.5"),
])
def test_library_errors_name_the_argument_and_the_cli_its_flag(argument, value, flags, problem, capsys):
    with pytest.raises(ConfigError) as caught:
        MeasureConfig(model="m", task="sst2", **{argument: value})
    assert (caught.value.argument, str(caught.value)) == (argument, f"{argument} {problem}")
    assert main(["--model", "m", "--task", "sst2", *flags]) == 2  # fails before any model is loaded
    assert capsys.readouterr().err == f"measure-did: error: {flags[0]} {problem}\n"


def test_a_projection_outside_the_choices_fails_in_python_too():
    with pytest.raises(ConfigError, match="projection must be one of dense, fastfood, sparse, got 'fast'"):
        MeasureConfig(model="m", task="sst2", projection="fast")


def test_several_full_learning_rates_keep_the_best_baseline(tiny_model_dir, shared, tmp_path):
    out = tmp_path / "s.json"
    args = base_args(tiny_model_dir, shared, tmp_path, "--dims", "16", "--output", str(out))
    args[args.index("--full-lr") + 1:args.index("--full-lr") + 2] = ["1e-4", "1e-2"]
    assert main(args) == 0
    summary = json.loads(out.read_text())
    full_runs = {r["config"]["train"]["lr"]: r["result"]["metrics"]["accuracy"]
                 for r in ResultStore(tmp_path / "runs.jsonl").records() if r["config"]["subspace"] is None}
    assert set(full_runs) == {1e-4, 1e-2}
    assert summary["full_metric"] == max(full_runs.values())
    assert full_runs[summary["full_lr"]] == summary["full_metric"]


def test_default_outputs_go_under_the_git_ignored_runs_folder():
    from intrinsic.plot_cli import DEFAULT_OUTPUT

    assert build_parser().parse_args(["--model", "m", "--task", "sst2"]).results == Path("runs/runs.jsonl")
    assert all(path.parts[0] == "runs" for path in DEFAULT_OUTPUT.values())
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "runs/" in ignored


@pytest.mark.parametrize("name", [m for m in METHOD_NAMES if m != "head-only"])
def test_every_method_measures_end_to_end_from_the_command_line(name, tiny_model_dir, shared, tmp_path):
    knob = get_method(name).knob
    dims = [] if knob is None else ["--dims", str(knob.first)]
    assert main(base_args(tiny_model_dir, shared, tmp_path, "--method", name, *dims,
                          "--output", str(tmp_path / "s.json"))) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["method"] == name and len(summary["curve"]) == 1
    runs = [r for r in ResultStore(tmp_path / "runs.jsonl").records() if r["config"]["subspace"] is not None
            or "method" in r["config"]]
    assert len(runs) == 1 and runs[0]["result"]["status"] == "ok" and runs[0]["result"]["steps"] > 0
