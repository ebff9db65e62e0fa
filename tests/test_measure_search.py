"""The d90 search inside measure_d90, end to end, with a trainer whose dev accuracy is a known function of d.

Everything else is real: a tiny BERT saved to a folder and loaded by the runner, its own WordPiece
tokenizer, an SST-2 folder in GLUE's layout, the chance score, the run store and the wrapper.
Only ``train_fn`` (measure_d90's trainer argument) is replaced, so the curve, the order in which
d are tried and both d90s are known exactly.
"""

import math

import pytest

from intrinsic import measure_d90
from intrinsic.store import ResultStore
from intrinsic.training import RunResult

from .conftest import save_tiny_bert_folder

WORDS = ["good", "bad", "film", "fine", "dull", "a", "very"]
TRAIN = [("a good film", 1), ("very good", 1), ("a fine film", 1), ("fine", 1), ("a bad film", 0), ("dull", 0)]
DEV = [(f"{'a good' if i % 2 else 'a dull'} film", i % 2) for i in range(10)]  # 5 and 5: chance 0.5
BEST_LR = 3e-2


def accuracy_at(d: int) -> float:
    """The known curve: 0.6 at d = 128, +0.1 per doubling, 0.9 (= full fine-tuning) from d = 1,024."""
    return min(0.9, 0.5 + 0.1 * math.log2(d / 64))


class KnownCurve:
    """A ``train_fn`` with ``train_and_evaluate``'s signature: full fine-tuning scores 0.9, a subspace
    of dimension d ``accuracy_at(d)``; seed 0 scores 0.02 above and seed 1 0.02 below, and any
    learning rate but ``BEST_LR`` 0.05 below. Records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, task, tokenizer, train, dev, config, *, device, progress, description):
        subspace = getattr(model, "subspace_config", None)
        d = None if subspace is None else subspace.d
        self.calls.append((d, config.lr, config.seed))
        value = 0.9 if d is None else accuracy_at(d) - (0.0 if config.lr == BEST_LR else 0.05)
        return RunResult("ok", {"accuracy": value + (0.02 if config.seed == 0 else -0.02)}, steps=1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"), WORDS)


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    for split, rows in (("train", TRAIN), ("dev", DEV)):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_the_search_tries_the_expected_d_and_reads_off_both_d90s(tiny_model, glue_dir, tmp_path):
    trainer = KnownCurve()
    options = dict(model=str(tiny_model), task="sst2", data_dir=str(glue_dir), seeds=[0, 1], lrs=[1e-2, BEST_LR],
                   device="cpu", results=tmp_path / "runs.jsonl", progress=False, train_fn=trainer)
    result = measure_d90(**options)

    assert result.full_metric == pytest.approx(0.9) and result.chance == 0.5
    assert result.target == pytest.approx(0.81)  # 0.9 × full
    assert result.target_chance_corrected == pytest.approx(0.86)  # chance + 0.9 × (full − chance)

    # Full fine-tuning for each seed first; then, per d, every learning rate × every seed.
    assert trainer.calls[:2] == [(None, 2e-5, 0), (None, 2e-5, 1)]
    subspace_calls = trainer.calls[2:]
    tried = [d for d, _, _ in subspace_calls[::4]]
    assert subspace_calls == [(d, lr, seed) for d in tried for lr in (1e-2, BEST_LR) for seed in (0, 1)]
    # The paper's target 0.81: doubling from 128 misses 128, 256, 512 and hits 1,024; bisection hits
    # at 724 (0.850) and 609 (0.825), where 609 / 512 ≤ 1.25 stops it. The corrected target 0.86 reuses
    # those, misses 724 and hits 861 (0.875), and 861 / 724 ≤ 1.25 stops it.
    assert tried == [128, 256, 512, 1024, 724, 609, 861]
    assert result.d90 == 609 and result.d90_chance_corrected == 861

    assert [p["d"] for p in result.curve] == sorted(tried)
    for point in result.curve:
        assert point["mean"] == pytest.approx(accuracy_at(point["d"]))
        assert point["std"] == pytest.approx(0.04 / math.sqrt(2))  # two seeds, 0.02 either side
        assert point["n"] == 2 and point["lr"] == BEST_LR
        assert point["bound"] == pytest.approx(math.sqrt(point["d"] / len(TRAIN)))
    assert result.train_examples == len(TRAIN) and result.failed_runs == 0 and result.notes == []

    # Every run is in the store, keyed apart from real training; a rerun trains nothing.
    records = ResultStore(tmp_path / "runs.jsonl").records()
    assert len(records) == len(trainer.calls) == 2 + 4 * len(tried)
    assert {r["config"]["train_fn"] for r in records} == {f"{__name__}.KnownCurve"}
    again = KnownCurve()
    assert measure_d90(**{**options, "train_fn": again}).to_dict() == result.to_dict()
    assert again.calls == []


def test_dims_instead_of_the_search_measure_exactly_the_list(tiny_model, glue_dir, tmp_path):
    trainer = KnownCurve()
    result = measure_d90(model=str(tiny_model), task="sst2", data_dir=str(glue_dir), lrs=[BEST_LR], dims=[300, 100],
                         device="cpu", results=tmp_path / "runs.jsonl", progress=False, train_fn=trainer)
    assert [d for d, _, _ in trainer.calls] == [None, 100, 300]
    assert [p["d"] for p in result.curve] == [100, 300]
    # Seed 0 alone: full 0.92, targets 0.828 and 0.878; d = 300 scores 0.743, the best of the two.
    assert result.curve[-1]["mean"] == pytest.approx(accuracy_at(300) + 0.02)
    assert result.d90 is None and result.d90_chance_corrected is None
