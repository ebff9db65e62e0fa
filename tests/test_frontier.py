"""measure_frontier, measure-frontier and the frontier figure, on a tiny BERT saved to a folder.

The measurement runs with a trainer whose dev accuracy is a known function of the number of
parameters the built model trains, so every method's parameters-to-90 % is known: the smallest
setting whose trainable count reaches the target. Everything else is real (loading, building each
method, counting, the search, the run store). The command line is run with real training on six
examples, checking what it writes and that bad input is one line and exit status 2.
"""

import json
import math
import sys

import matplotlib
import pytest

from intrinsic import plots
from intrinsic.errors import ConfigError
from intrinsic.frontier import Frontier, measure_frontier
from intrinsic.frontier_cli import main
from intrinsic.measure import MeasureConfig
from intrinsic.methods import get_method, trainable_count
from intrinsic.plot_cli import main as plot_main
from intrinsic.store import ResultStore
from intrinsic.training import RunResult

from .conftest import save_tiny_bert_folder
from .test_measure_search import WORDS, glue_dir, tiny_model  # noqa: F401 (fixtures)

matplotlib.use("Agg")

METHODS = ["did", "lora", "bitfit", "houlsby", "prompt-tuning"]
HEAD = 34  # the tiny BERT's classifier: 16 × 2 + 2 (its pooler is pretrained)
# Trainable count at each knob on the tiny BERT (one layer, d = 16, d_ff = 32), head frozen, by the
# formulas the method docstrings state: d; 4·L·r·d; L·(7d + d_ff) + d + the pooler's d;
# L·(2·(2md + m + d) + 4d); l·d.
COUNT = {"did": lambda d: d, "lora": lambda r: 64 * r, "bitfit": lambda _: 176, "houlsby": lambda m: 66 * m + 96,
         "prompt-tuning": lambda tokens: 16 * tokens}
DID_LRS = [1e-2, 3e-2]


def accuracy_of(n: int, unit: int = 16) -> float:
    """The known curve: 0.6 at 2·unit trainable parameters, +0.1 per doubling, 0.9 (full fine-tuning) from 16·unit."""
    return min(0.9, 0.5 + 0.1 * math.log2(n / unit))


class KnownCount:
    """A ``train_fn`` with ``train_and_evaluate``'s signature: dev and validation accuracy are
    ``accuracy_of`` the built model's requires_grad count, seed 0 0.01 above and seed 1 0.01 below."""

    def __init__(self, unit: int = 16):
        self.unit, self.calls = unit, []

    def __call__(self, model, task, tokenizer, train, dev, config, *, device, progress, description, validation):
        n = trainable_count(model)
        self.calls.append((n, config.lr, config.seed))
        score = {"accuracy": accuracy_of(n, self.unit) + (0.01 if config.seed == 0 else -0.01)}
        return RunResult("ok", score, steps=1, validation_metrics={} if validation is None else score,
                         first_loss=0.7, train_loss=0.3)


def config(model, data, **options) -> MeasureConfig:
    return MeasureConfig(**{"model": str(model), "task": "sst2", "data_dir": str(data), "seeds": [0, 1],
                            "resolution": 0.001, "device": "cpu", **options})


@pytest.fixture(scope="module")
def measured(tiny_model, glue_dir, tmp_path_factory):  # noqa: F811
    store = tmp_path_factory.mktemp("frontier") / "runs.jsonl"
    frontier = measure_frontier(METHODS, config(tiny_model, glue_dir), lrs={"did": DID_LRS}, results=store,
                                progress=False, train_fn=KnownCount())
    return frontier, store


@pytest.fixture(scope="module")
def gpt2_model(tmp_path_factory):
    """A folder holding a tiny GPT-2 classifier (beside a WordPiece tokenizer): no BERT layers."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    folder = save_tiny_bert_folder(tmp_path_factory.mktemp("tiny-gpt2"), WORDS)
    GPT2ForSequenceClassification(GPT2Config(vocab_size=len(WORDS) + 5, n_embd=16, n_layer=1, n_head=2,
                                             n_positions=32, pad_token_id=0)).save_pretrained(folder)
    return folder


def expected_knob(method: str, target: float) -> int | None:
    """The smallest knob whose count reaches ``target`` (None: a method of fixed size)."""
    knob = get_method(method).knob
    return None if knob is None else next(k for k in range(knob.low, 4097) if accuracy_of(COUNT[method](k)) >= target)


def test_each_methods_parameters_to_90_is_the_smallest_setting_whose_count_reaches_the_target(measured):
    frontier, _ = measured
    first = frontier.first
    assert first.full_metric == pytest.approx(0.9) and first.chance == 0.5
    assert all((r.full_metric, r.chance, r.target) == (first.full_metric, first.chance, first.target)
               for r in frontier.results)
    assert [r.method for r in frontier.results] == METHODS and frontier.head == "frozen"
    for kind, target in (("d90", first.target), ("corrected", first.target_chance_corrected)):
        rows = frontier.rows(kind)
        for row in rows:
            if row["trainable"] is None:  # bitfit's 176 reaches 0.81, not 0.86
                assert (row["method"], kind, accuracy_of(176) < target) == ("bitfit", "corrected", True)
                continue
            knob = expected_knob(row["method"], target)
            assert row["knob_at_90"] == knob
            assert row["trainable"] == row["stored"] == COUNT[row["method"]](knob) and row["head"] == 0
        counts = [row["trainable"] for row in rows]
        reached = [n for n in counts if n is not None]
        assert counts[:len(reached)] == sorted(reached)  # sorted by trainable, the methods that miss last
    # The paper's target 0.81 needs 138 trainable numbers, the chance-corrected 0.86 needs 195.
    assert [(r["method"], r["knob_at_90"], r["trainable"]) for r in frontier.rows("d90")] == [
        ("did", 138, 138), ("prompt-tuning", 9, 144), ("houlsby", 1, 162), ("bitfit", None, 176), ("lora", 3, 192)]
    assert [(r["method"], r["knob_at_90"], r["trainable"]) for r in frontier.rows("corrected")] == [
        ("did", 195, 195), ("prompt-tuning", 13, 208), ("houlsby", 2, 228), ("lora", 4, 256), ("bitfit", None, None)]

    head_only, untrained = frontier.references["head-only"], frontier.references["untrained"]
    assert head_only["trainable"] == HEAD and head_only["mean"] == pytest.approx(accuracy_of(HEAD))
    assert head_only["n"] == untrained["n"] == 2 and untrained["trainable"] == 0 and untrained["lr"] is None
    assert frontier.notes == []  # the head alone (0.609) reaches neither target
    table = frontier.table("corrected")
    assert "target 0.8600 (chance-corrected), head frozen" in table and "head-only" in table
    assert table.index("prompt-tuning") < table.index("lora") < table.index("bitfit")


def test_a_search_stops_at_the_largest_knob_max_knobs_allows(measured, tiny_model, glue_dir):  # noqa: F811
    _, store = measured  # reuses the stored runs: only the cap differs
    capped = measure_frontier(["lora"], config(tiny_model, glue_dir), max_knobs={"lora": 2}, results=store,
                              progress=False, train_fn=KnownCount())
    lora = capped.results[0]
    assert max(p["knob"] for p in lora.curve) == 2 and lora.describe("d90") == "> 2"  # r = 3 is needed


def test_the_frontier_round_trips_through_json(measured, tmp_path):
    frontier, _ = measured
    frontier.save(tmp_path / "frontier.json")
    again = Frontier.load(tmp_path / "frontier.json")
    assert again.to_dict() == frontier.to_dict()
    data = json.loads((tmp_path / "frontier.json").read_text())
    assert set(data) == {"head", "references", "versions", "notes", "frontier", "results"}
    assert data["frontier"]["d90"][0]["method"] == "did"


def test_every_method_runs_on_the_same_data_seeds_epochs_and_selection(measured):
    _, store = measured
    records = [r["config"] for r in ResultStore(store).records()]
    shared = {json.dumps({**{k: v for k, v in c.items() if k not in ("train", "subspace", "fastfood_random", "head",
                                                                       "method")},
                          "train": {k: v for k, v in c["train"].items() if k not in ("lr", "seed")}}, sort_keys=True)
              for c in records}
    assert len(shared) == 1  # model, task, data, validation split, epochs, batch size, length: one setting
    assert {c["train"]["seed"] for c in records} == {0, 1}
    grids = {}
    for c in records:
        name = c["method"]["name"] if "method" in c else "did" if c["subspace"] else "full"
        grids.setdefault(name, set()).add(c["train"]["lr"])
        if "method" in c:
            assert c["method"]["head"] == ("train" if name == "head-only" else "frozen")
        elif c["subspace"]:
            assert c["head"] == "frozen"
    assert grids.pop("did") == set(DID_LRS) and grids.pop("full") == {2e-5}
    assert grids == {name: set(get_method(name).default_lrs) for name in [*METHODS[1:], "head-only"]}


def test_a_head_that_reaches_a_target_alone_is_noted(tiny_model, glue_dir, tmp_path):  # noqa: F811
    frontier = measure_frontier(["bitfit"], config(tiny_model, glue_dir), results=tmp_path / "runs.jsonl",
                                progress=False, train_fn=KnownCount(unit=2))  # the head's 34 score 0.9
    assert [note.split(":")[0] for note in frontier.notes] == [
        f"the head alone ({HEAD} parameters) reaches the paper target",
        f"the head alone ({HEAD} parameters) reaches the chance-corrected target"]
    assert all(f"note: {note}" in frontier.table() for note in frontier.notes)


def test_a_method_that_refuses_the_architecture_fails_in_its_run_naming_it(gpt2_model, glue_dir, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError) as caught:
        measure_frontier(["houlsby"], config(gpt2_model, glue_dir, seeds=[0]), results=tmp_path / "runs.jsonl",
                         progress=False, train_fn=KnownCount())
    assert caught.value.argument == "method" and "houlsby needs BERT-style encoder layers" in caught.value.problem


# ---------------------------------------------------------------------------------------------- the CLI
def cli_args(model, data, tmp_path, *extra):
    return ["--model", str(model), "--task", "sst2", "--data-dir", str(data), "--epochs", "1", "--max-length", "16",
            "--batch-size", "8", "--results", str(tmp_path / "runs.jsonl"), "--no-progress", *extra]


def test_measure_frontier_end_to_end_prints_both_tables_and_writes_json_and_figure(tiny_model, glue_dir,  # noqa: F811
                                                                                   tmp_path, capsys):
    out, figure = tmp_path / "frontier.json", tmp_path / "figures" / "frontier.png"
    assert main(cli_args(tiny_model, glue_dir, tmp_path, "--methods", "bitfit", "lora", "--lr-for", "lora=1e-3",
                         "--output", str(out), "--figure", str(figure))) == 0
    printed = capsys.readouterr().out
    assert "(paper), head frozen" in printed and "(chance-corrected), head frozen" in printed
    assert "head-only" in printed and "untrained" in printed and f"wrote {out}" in printed
    frontier = Frontier.load(out)
    assert [r.method for r in frontier.results] == ["bitfit", "lora"] and set(frontier.references) == {
        "head-only", "untrained"}
    assert figure.stat().st_size > 0
    lora_lrs = {r["config"]["train"]["lr"] for r in ResultStore(tmp_path / "runs.jsonl").records()
                if r["config"].get("method", {}).get("name") == "lora"}
    assert lora_lrs <= {1e-3}


@pytest.mark.parametrize("case, extra, expected", [
    ("unknown method", ["--methods", "lora", "nope"], "argument --methods: 'nope' is unknown; choose from did, said"),
    ("the reference", ["--methods", "head-only"], "head-only is measured with every frontier as a reference"),
    ("flag out of range", ["--start-d", "0"], "--start-d must be at least 1, got 0"),
    ("dims out of range", ["--dims", "0"], "--dims must be positive integers, got [0]"),
    ("head refused", ["--head", "projected", "--methods", "did", "lora"],
     "--head 'projected' is not supported by lora (it supports frozen, train)"),
    ("architecture", ["--methods", "bitfit", "houlsby"],
     "--methods: houlsby needs BERT-style encoder layers (hooks on attention.output.dense, output.dense); "
     "GPT2ForSequenceClassification (model_type 'gpt2') has none; drop it from --methods"),
    ("architectures", ["--methods", "bitfit", "houlsby", "lora"],
     "--methods houlsby, lora cannot run here (the first: houlsby needs BERT-style encoder layers"),
    ("no peft", ["--methods", "bitfit", "lora"],
     "--methods: lora needs the peft package: pip install 'intrinsic[peft]'; drop it from --methods"),
    ("malformed --lr-for", ["--lr-for", "lora:1e-3"], "argument --lr-for: 'lora:1e-3' is not METHOD=LR[,LR…]"),
    ("--lr-for not a number", ["--lr-for", "lora=fast"], "learning rates must be numbers"),
    ("--lr-for not positive", ["--lr-for", "lora=0,1e-3"], "learning rates must be positive"),
    ("--lr-for twice", ["--lr-for", "lora=1e-3", "--lr-for", "lora=1e-4"], "--lr-for gives lora twice"),
    ("--lr-for unmeasured", ["--methods", "bitfit", "--lr-for", "lora=1e-3"],
     "--lr-for gives lora, which --methods does not measure"),
    ("measure-did's --lr", ["--lr", "1e-3"], "--lr is measure-did's; a frontier takes one grid per method: --lr-for"),
    ("figure format", ["--figure", "f.jpg"], "--figure f.jpg: use one of .png, .svg, .pdf"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_training(case, extra, expected, tiny_model, gpt2_model,  # noqa: F811
                                                              glue_dir, tmp_path, capfd, monkeypatch):  # noqa: F811
    model = gpt2_model if case.startswith("architecture") else tiny_model
    if case == "no peft":
        monkeypatch.setitem(sys.modules, "peft", None)  # import peft fails
    assert main(cli_args(model, glue_dir, tmp_path, *extra)) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("measure-frontier: error: ") and expected in err[0], err
    assert not (tmp_path / "runs.jsonl").exists() or ResultStore(tmp_path / "runs.jsonl").records() == []


def test_a_method_refusing_the_model_inside_a_run_is_one_line_too(gpt2_model, glue_dir, tmp_path, capfd,  # noqa: F811
                                                                 monkeypatch):
    monkeypatch.setattr("intrinsic.frontier_cli.check_methods", lambda *args: None)  # the refusal comes in the run
    # Real training would not beat chance here, and then no knob is searched and nothing built: the
    # known-count trainer (full fine-tuning 0.9) makes the search build houlsby.
    monkeypatch.setattr("intrinsic.runner.train_and_evaluate", KnownCount())
    assert main(cli_args(gpt2_model, glue_dir, tmp_path, "--methods", "houlsby", "--seeds", "0")) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["measure-frontier: error: --methods: houlsby needs BERT-style encoder layers (hooks on "
                   "attention.output.dense, output.dense); GPT2ForSequenceClassification (model_type 'gpt2') has "
                   "none; drop it from --methods to measure the others"]


# ---------------------------------------------------------------------------------------------- the figure
def test_the_figure_draws_each_method_its_target_marks_and_the_reference_lines(measured):
    frontier, _ = measured
    fig = plots.frontier(frontier, kind="corrected")
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == METHODS  # one curve (with error bars) per method
    bitfit = ax.containers[METHODS.index("bitfit")]
    assert len(bitfit.lines[0].get_xdata()) == 1  # a method of fixed size is one point
    stars = [c.get_label() for c in ax.collections if c.get_label().endswith("at the target")]
    assert stars == [f"_{m} at the target" for m in METHODS if m != "bitfit"]  # bitfit misses 0.86
    labels = [line.get_label() for line in ax.get_legend().get_lines()]
    assert labels == ["full fine-tuning 0.900", "0.9 × full 0.810", "chance-corrected target 0.860", "chance 0.500",
                      f"head-only {accuracy_of(HEAD):.3f}, {HEAD} parameters",
                      f"untrained {frontier.references['untrained']['mean']:.3f}"]
    assert ax.get_xscale() == "log"
    table = ax.tables[0]
    column = [table[i, 0].get_text().get_text() for i in range(1, len(METHODS) + 1)]
    assert column == ["did", "prompt-tuning", "houlsby", "lora", "bitfit"]  # by trainable at the target
    assert table[len(METHODS), 1].get_text().get_text() == "not reached"


def test_plot_did_redraws_the_frontier_as_png_and_svg(measured, tmp_path, monkeypatch, capsys):
    frontier, _ = measured
    frontier.save(tmp_path / "frontier.json")
    monkeypatch.chdir(tmp_path)
    assert plot_main(["frontier", "frontier.json"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs" / "figures").iterdir()) == ["frontier.png", "frontier.svg"]
    assert plot_main(["frontier", "frontier.json", "--kind", "corrected", "--output", "b"]) == 0
    assert (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")
    capsys.readouterr()
    (tmp_path / "one.json").write_text(json.dumps(frontier.first.to_dict()))
    assert plot_main(["frontier", "one.json"]) == 2
    assert "one.json is not a frontier: write one with measure-frontier --output" in capsys.readouterr().err
    assert plot_main(["frontier", "frontier.json", "--kind", "both"]) == 2


def test_widened_grid_adds_one_rate_at_the_grids_own_spacing():
    from intrinsic.measure import typed_rate, widened_grid

    assert widened_grid([1e-3, 1e-4], "top") == [1e-4, 1e-3, 1e-2]  # exactly the rates a user types
    assert widened_grid([1e-2, 3e-2, 1e-1], "bottom") == pytest.approx([1e-2 / 3, 1e-2, 3e-2, 1e-1])
    assert widened_grid([3e-3, 3e-2], "bottom")[0] == typed_rate(3e-3 / 10) == 3e-4  # not 0.00030000000000000003


class BestAt1e2(KnownCount):
    """KnownCount, plus a bonus that peaks at lr 1e-2: a grid of 1e-4 and 1e-3 is too low."""

    def __call__(self, model, task, tokenizer, train, dev, config, **kwargs):
        result = super().__call__(model, task, tokenizer, train, dev, config, **kwargs)
        bonus = 0.02 * (2 - abs(math.log10(config.lr) + 2))
        scores = {"accuracy": result.metrics["accuracy"] + bonus}
        return RunResult("ok", scores, steps=1, validation_metrics=scores, first_loss=0.7, train_loss=0.3)


def test_a_grid_every_point_of_which_chose_its_top_is_widened_until_a_rate_inside_wins(tiny_model, glue_dir,  # noqa: F811
                                                                                        tmp_path):
    trainer = BestAt1e2()
    frontier = measure_frontier(["lora"], config(tiny_model, glue_dir), lrs={"lora": [1e-4, 1e-3]}, widen=2,
                                results=tmp_path / "runs.jsonl", progress=False, train_fn=trainer)
    (lora,) = frontier.results
    assert lora.config["lrs"] == [1e-4, 1e-3, 1e-2, 1e-1]  # 1e-3 won, then 1e-2 won: the top twice
    assert {p["lr"] for p in lora.curve} == {1e-2}
    assert lora.notes[:2] == ["every point whose rates did not tie chose the top of the grid 0.0001, 0.001: measured "
                              "again with 0.0001, 0.001, 0.01", "every point whose rates did not tie chose the top of "
                              "the grid 0.0001, 0.001, 0.01: measured again with 0.0001, 0.001, 0.01, 0.1"]
    assert not any("widen the grid" in note for note in lora.notes)  # 1e-2 is inside the final grid
    narrow = measure_frontier(["lora"], config(tiny_model, glue_dir), lrs={"lora": [1e-4, 1e-3]}, widen=0,
                              results=tmp_path / "runs.jsonl", progress=False, train_fn=trainer)
    assert narrow.results[0].config["lrs"] == [1e-4, 1e-3]
    assert any("widen the grid" in note for note in narrow.results[0].notes)


@pytest.mark.parametrize("head", ["frozen", "projected"])
def test_a_subspace_search_stops_at_the_parameters_its_theta_covers(tiny_model, glue_dir, tmp_path, head):  # noqa: F811
    from intrinsic.runner import Runner

    runner = Runner(config(tiny_model, glue_dir, method="did", head=head), None, progress=False)
    _, high = runner.knob_limits()
    head_size = sum(p.numel() for n, p in runner.load_model(0).named_parameters() if n in runner.head_names)
    assert runner.head_size == head_size
    assert head_size > 0 and high == runner.D - (head_size if head == "frozen" else 0)
    # the largest knob builds: d = the count θ covers (one more is refused as larger than the space)
    runner.method.build(runner.load_model(0), high, head=head, head_names=runner.head_names, seed=0)
    with pytest.raises(ValueError, match="exceeds the number of parameters"):
        runner.method.build(runner.load_model(0), high + 1, head=head, head_names=runner.head_names, seed=0)
