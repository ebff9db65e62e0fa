"""Several models in one measurement (measure-did --model A B), the figures, and plot-did."""

import json
import math

import matplotlib
import pytest
import torch

from intrinsic.cli import main
from intrinsic.plot_cli import main as plot_main
from intrinsic.plots import curves, d90_vs_params, d90_vs_step, fit_power_law, save_figure
from intrinsic.results import D90Result, Sweep, load_results

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def checkpoints(shared, tmp_path_factory):
    """Two tiny random BERTs of different widths, saved as run/step-0 and run/step-5."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    root = tmp_path_factory.mktemp("run")
    tokenizer = AutoTokenizer.from_pretrained(shared / "models" / "paraphrase-MiniLM-L3-v2")
    folders = []
    for step, hidden in ((0, 8), (5, 16)):
        folder = root / f"step-{step}"
        torch.manual_seed(step)
        config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=2 * hidden, max_position_embeddings=64)
        BertForSequenceClassification(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders.append(folder)
    return folders


def args(checkpoints, shared, tmp_path, *extra):
    return ["--model", *map(str, checkpoints), "--task", "sst2", "--data-dir", str(shared / "data" / "glue"),
            "--max-train-samples", "48", "--epochs", "1", "--max-length", "32", "--lr", "3e-2", "--full-lr", "1e-3",
            "--dims", "16", "64", "--results", str(tmp_path / "runs.jsonl"), "--no-progress", *extra]


def test_several_models_give_one_table_one_json_and_reuse_the_store(checkpoints, shared, tmp_path, capsys):
    out, figure = tmp_path / "sweep.json", tmp_path / "curves.png"
    assert main(args(checkpoints, shared, tmp_path, "--output", str(out), "--figure", str(figure))) == 0
    printed = capsys.readouterr().out
    assert "0/step-0 " in printed and "0/step-5 " in printed and "gap@d90" in printed
    assert printed.count("full fine-tuning accuracy") == 2  # each model's own table, then the summary
    data = json.loads(out.read_text())
    results = [D90Result.from_dict(item) for item in data["results"]]
    assert [r.model_info["step"] for r in results] == [0, 5]
    assert results[0].model_info["non_embedding_params"] < results[1].model_info["non_embedding_params"]
    assert all([p["d"] for p in r.curve] == [16, 64] for r in results)
    assert "compression_bound" in data["results"][0]
    assert figure.stat().st_size > 0
    stored = (tmp_path / "runs.jsonl").read_text().count("\n")
    assert stored == 2 * 3  # per model: full fine-tuning + two d

    assert main(args(checkpoints, shared, tmp_path, "--output", str(out))) == 0  # everything cached
    assert (tmp_path / "runs.jsonl").read_text().count("\n") == stored
    again = load_results(out)
    assert [r.curve for r in again] == [r.curve for r in results]
    assert [r.full_metric for r in again] == [r.full_metric for r in results]


def test_a_checkpoint_rewritten_under_the_same_name_is_measured_again(checkpoints, shared, tmp_path):
    import shutil

    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = tmp_path / "run" / "step-0"
    shutil.copytree(checkpoints[0], folder)
    store = tmp_path / "runs.jsonl"
    assert main(args([folder], shared, tmp_path)) == 0
    first = store.read_text().count("\n")
    assert main(args([folder], shared, tmp_path)) == 0  # unchanged: every run comes from the store
    assert store.read_text().count("\n") == first

    torch.manual_seed(123)  # another model saved under the same path
    AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(checkpoints[1])).save_pretrained(folder)
    with pytest.warns(RuntimeWarning, match="has changed since runs of it were stored"):
        assert main(args([folder], shared, tmp_path)) == 0
    assert store.read_text().count("\n") == 2 * first  # every run repeated, none served stale
    assert main(args([folder], shared, tmp_path)) == 0  # and the new runs are the ones reused
    assert store.read_text().count("\n") == 2 * first


def test_one_model_still_writes_a_single_result(checkpoints, shared, tmp_path):
    out = tmp_path / "one.json"
    assert main(args(checkpoints[:1], shared, tmp_path, "--output", str(out))) == 0
    data = json.loads(out.read_text())
    assert "results" not in data and data["model_info"]["step"] == 0
    assert len(load_results(out)) == 1


def test_a_model_listed_twice_is_an_error(checkpoints, shared, tmp_path, capsys):
    assert main(args([checkpoints[0], checkpoints[0]], shared, tmp_path)) == 2
    assert "measure-did: error: --model lists a model twice" in capsys.readouterr().err


def synthetic(label, step, params, d90, corrected, chance=0.5, full=0.8):
    curve = [{"d": d, "mean": 0.6 + 0.01 * i, "std": 0.0, "n": 1, "lr": 0.03, "bound": 0.1}
             for i, d in enumerate((64, 128, 256, 512))]
    return D90Result(model=label, task="sst2", metric="accuracy", D=10 * params, d90=d90,
                     d90_chance_corrected=corrected, threshold=0.9, full_metric=full, chance=chance,
                     target=0.9 * full, target_chance_corrected=chance + 0.9 * (full - chance), train_examples=100,
                     curve=curve, failed_runs=0, config={"said": True, "projection": "fastfood"}, versions={},
                     model_info={"label": label, "step": step, "params": 10 * params, "non_embedding_params": params})


def test_power_law_fit_recovers_the_exponent():
    xs = [1e4, 1e5, 1e6, 1e7]
    slope, intercept = fit_power_law(xs, [3e5 * x ** -0.4 for x in xs])
    assert slope == pytest.approx(-0.4) and 10 ** intercept == pytest.approx(3e5)
    with pytest.raises(ValueError):
        fit_power_law([10, 10], [1, 2])


def test_figures_draw_defined_reached_and_undefined_points():
    results = [synthetic("a", 0, 1_000, None, 512), synthetic("b", 100, 10_000, 256, 256),
               synthetic("c", 200, 100_000, 128, 64)]
    results[0].target = 0.4  # below chance: the paper's d90 is undefined there
    fig = d90_vs_params(results)
    # x = 10³, 10⁴, 10⁵ evenly spaced in log: the least-squares slope is (log 64 − log 512) / 2
    assert fig.fits["corrected"][0] == pytest.approx(math.log10(64 / 512) / 2)
    assert fig.fits["d90"][0] == pytest.approx(-0.30103, abs=1e-4)  # only b and c are defined
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("1 undefined" in text for text in legend) and any("N^-0.45" in text for text in legend)
    fig = d90_vs_step(Sweep(results))
    line = fig.axes[0].get_lines()[1]
    assert list(line.get_xdata()) == [0, 100, 200] and list(line.get_ydata()) == [512, 256, 64]
    fig = curves(results, normalized=True)
    assert len(fig.axes[0].get_legend().get_texts()) == 4
    missing = synthetic("x", None, 10, 1, 1)
    with pytest.raises(ValueError, match="pre-training step"):
        d90_vs_step([missing])


def test_plot_did_writes_png_and_svg(tmp_path, capsys):
    path = tmp_path / "sweep.json"
    Sweep([synthetic("a", 0, 1_000, 512, 512), synthetic("b", 10, 100_000, 128, 256)]).save(path)
    for figure in ("step", "size", "curves"):
        assert plot_main([figure, str(path), "--output", str(tmp_path / "figs" / figure)]) == 0
        assert (tmp_path / "figs" / f"{figure}.png").stat().st_size > 0
        assert (tmp_path / "figs" / f"{figure}.svg").read_text().lstrip().startswith("<?xml")
    assert "d90 ∝ N^-0.301" in capsys.readouterr().out
    assert plot_main(["step", str(tmp_path / "missing.json"), "--output", str(tmp_path / "x")]) == 2
    assert "measure-did --output" in capsys.readouterr().err


def test_plot_did_writes_under_the_ignored_runs_folder_by_default(tmp_path, monkeypatch):
    path = tmp_path / "sweep.json"
    Sweep([synthetic("a", 0, 1_000, 512, 512), synthetic("b", 10, 100_000, 128, 256)]).save(path)
    monkeypatch.chdir(tmp_path)
    for figure in ("step", "size", "curves"):
        assert plot_main([figure, str(path)]) == 0
    written = sorted(p.name for p in (tmp_path / "runs" / "figures").iterdir())
    assert written == [f"{stem}.{ext}" for stem in ("curves", "d90-vs-size", "d90-vs-step") for ext in ("png", "svg")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "sweep.json"]  # nothing in tracked figures/


def test_redrawing_the_same_results_writes_the_same_bytes(tmp_path):
    results = [synthetic("a", 0, 1_000, 512, 512), synthetic("b", 10, 100_000, 128, 256)]
    first = save_figure(curves(results), tmp_path / "one")
    second = save_figure(curves(results), tmp_path / "two")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in first[1].read_bytes()


def test_figures_of_only_undefined_d90s_say_so_instead_of_failing():
    results = [synthetic("a", 0, 1_000, None, None, chance=0.9), synthetic("b", 5, 10_000, None, None, chance=0.9)]
    for draw in (d90_vs_step, d90_vs_params):
        fig = draw(results)
        assert any("no d90 defined" in t.get_text() for t in fig.axes[0].texts)
    assert d90_vs_params(results).fits == {"d90": None, "corrected": None}


def test_size_axis_labels_counts_compactly_and_names_every_tick_within_a_decade():
    def labels(sizes):
        fig = d90_vs_params([synthetic(str(n), 0, n, 512, 512) for n in sizes])
        fig.canvas.draw()
        axis = fig.axes[0].xaxis
        ticks = axis.get_majorticklabels() + axis.get_minorticklabels()
        return {t.get_text() for t in ticks if t.get_text()}

    wide = labels([54_402, 810_114])  # more than a decade: 1, 2 and 5 of each only
    assert {"100k", "200k", "500k"} <= wide and "300k" not in wide
    narrow = labels([5_472_770, 10_796_162])  # the MiniLM pair: within a decade, every tick
    assert {"6M", "7M", "8M", "9M", "10M"} <= narrow


def test_one_result_figure_and_table_state_both_d90s_as_people_read_them():
    undefined = synthetic("a", 0, 1_000, None, 512)
    undefined.target = 0.4  # below chance 0.5
    title = undefined.plot().axes[0].get_title()
    assert "d90 = undefined" in title and "chance-corrected 512" in title
    not_reached = synthetic("b", 0, 1_000, None, None)  # targets 0.72 and 0.77 above chance, curve up to 512
    assert (not_reached.describe("d90"), not_reached.describe("corrected")) == ("> 512", "> 512")
    assert not_reached.outcome("corrected") == (512, "above") and undefined.outcome("d90") == (None, "undefined")
    assert "chance-corrected d90 (≥ chance + 0.9·(full − chance) = 0.7700): > 512" in not_reached.table()


def test_figures_draw_not_trainable_as_such_and_d90_intervals_as_bars():
    untrainable = synthetic("a", 0, 1_000, None, None)
    untrainable.status = "not trainable"
    measured = synthetic("b", 100, 10_000, 256, 256)
    measured.uncertainty = {kind: {"per_seed": {"0": 128, "1": None}, "robust": 256, "narrow": False,
                                   "interval": {"low": 128, "high": None, "method": "min-max of per-seed d90s",
                                                "level": None}}
                            for kind in ("d90", "corrected")}
    ax = d90_vs_step([untrainable, measured]).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "not trainable with these settings" in labels and not any("not reached" in t for t in labels)
    # The interval's bar: from the lowest per-seed d90 up to the largest d tried (a seed never reached it).
    assert any(list(line.get_xdata()) == [100, 100] and list(line.get_ydata()) == [128, 512] for line in ax.lines)
    assert untrainable.describe("corrected") == "not trainable" and measured.interval("d90") == "[128, ∞)"
    spans = [p for p in measured.plot().axes[0].patches if "interval over seeds" in p.get_label()]
    assert len(spans) == 2


def test_figures_of_models_with_no_d90_defined_draw_and_say_why(tmp_path):
    results = [synthetic("a", 20, 1_000, None, None), synthetic("b", 20, 10_000, None, None)]
    for r in results:  # full fine-tuning at chance: both targets at or below it
        r.full_metric = r.chance = 0.49
        r.target, r.target_chance_corrected = 0.441, 0.49
    fig = d90_vs_params(results)
    fig.savefig(tmp_path / "sizes.png")  # a log axis with nothing on it must not fail to draw
    assert "no d90 defined" in " ".join(t.get_text() for t in fig.axes[0].texts)
    fig = curves(results, normalized=True)
    fig.savefig(tmp_path / "curves.png")
    assert "nothing to normalise" in fig.axes[0].get_legend().get_texts()[0].get_text()
