"""What the runs of one measurement share is computed once, and sharing it changes no result.

Three things are kept: the token ids of a split (``training.tokenize``, in ``Split.cache``), the
projection of a (d, seed) (``wrapper.ProjectionCache``, held by the runner), and, within one
evaluation, θ = θ₀ + Pθ_d (a wrapper's forward without autograd). Everything runs on a tiny
BERT built here and saved to a folder, with its own WordPiece tokenizer and a GLUE SST-2 folder.
"""

import copy
import json

import pytest
import torch
from torch.func import functional_call

from intrinsic import measure_d90
from intrinsic import wrapper as wrapper_module
from intrinsic.config import SubspaceConfig
from intrinsic.measure import MeasureConfig
from intrinsic.models import load_classifier, load_tokenizer
from intrinsic.projections import make_projection
from intrinsic.runner import load_splits
from intrinsic.tasks import get_task, load_task
from intrinsic.training import TrainConfig, collate, tokenize, train_and_evaluate
from intrinsic.wrapper import ProjectionCache, SubspaceWrapper

from .conftest import save_tiny_bert_folder

WORDS = ["good", "bad", "film", "fine", "dull", "a", "very", "not", "plot", "fun"]
TRAIN = [("a good film", 1), ("very good", 1), ("a fine film", 1), ("fine fun", 1), ("a bad film", 0),
         ("dull", 0), ("not good", 0), ("a dull plot", 0), ("very fun film", 1), ("bad plot", 0)] * 4
DEV = [("a good plot", 1), ("a dull film", 0), ("very bad", 0), ("fun", 1), ("not fine", 0), ("good fun", 1)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(model folder with tokenizer, GLUE folder with SST-2)."""
    model = save_tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"), WORDS, hidden_dropout_prob=0.1)
    glue = tmp_path_factory.mktemp("glue")
    (glue / "SST-2").mkdir()
    for name, rows in (("train", TRAIN), ("dev", DEV)):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (glue / "SST-2" / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return model, glue


def fresh_run(folders, d, lr, seed, max_length=16):
    """One run from nothing kept: data read, tokenizer and model loaded, projection drawn anew."""
    model_dir, glue = folders
    task = get_task("sst2")
    train, dev, validation = load_splits(task, MeasureConfig(model=str(model_dir), task="sst2", data_dir=str(glue)))
    tokenizer = load_tokenizer(str(model_dir))
    torch.manual_seed(seed)  # the runner's seeding of the fresh classification head
    model = load_classifier(str(model_dir), task.num_labels)
    if d is not None:
        model = SubspaceWrapper(model, config=SubspaceConfig(d=d, seed=seed))
    config = TrainConfig(lr=lr, epochs=2, batch_size=8, max_length=max_length, seed=seed)
    return train_and_evaluate(model, task, tokenizer, train, dev, config, device="cpu", progress=False,
                              validation=validation)


def test_a_measurement_with_its_caches_gives_bit_identical_runs(folders, tmp_path, monkeypatch):
    model_dir, glue = folders
    store = tmp_path / "runs.jsonl"
    built = []  # the projections drawn: one per (d, seed), shared by both learning rates
    counted = lambda *args, **kwargs: built.append(args[:2]) or make_projection(*args, **kwargs)  # noqa: E731
    monkeypatch.setattr(wrapper_module, "make_projection", counted)
    measure_d90(model=str(model_dir), task="sst2", data_dir=str(glue), dims=[40, 300], lrs=[3e-2, 1e-1],
                seeds=[0, 1], full_lr=1e-3, epochs=2, batch_size=8, max_length=16, results=store, progress=False)
    stored = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(stored) == 2 + 2 * 2 * 2  # full at 2 seeds; 2 d × 2 lr × 2 seeds
    assert len(built) == 2 * 2
    for record in stored:
        subspace, train = record["config"]["subspace"], record["config"]["train"]
        expected = fresh_run(folders, None if subspace is None else subspace["d"], train["lr"], train["seed"]).to_dict()
        assert record["result"]["status"] == "ok"
        assert record["result"]["metrics"] == expected["metrics"]  # exact, not approximately
        assert record["result"]["validation_metrics"] == expected["validation_metrics"]
        assert record["result"]["train_loss"] == expected["train_loss"]


def test_tokenize_once_per_split_tokenizer_and_length(folders):
    model_dir, glue = folders
    tokenizer = load_tokenizer(str(model_dir))
    train, _ = load_task("sst2", glue)
    first = tokenize(tokenizer, train, 16)
    assert tokenize(tokenizer, train, 16) is first
    short = tokenize(tokenizer, train, 3)
    assert short is not first and all(len(f["input_ids"]) <= 3 for f in short)
    other = load_tokenizer(str(model_dir))
    assert tokenize(other, train, 16) is not first and tokenize(other, train, 16) == first
    again, _ = load_task("sst2", glue)  # another split object: its own cache
    assert tokenize(tokenizer, again, 16) is not first and tokenize(tokenizer, again, 16) == first


def test_training_leaves_the_kept_token_ids_as_they_were(folders):
    model_dir, glue = folders
    task, tokenizer = get_task("sst2"), load_tokenizer(str(model_dir))
    train, dev = load_task(task, glue)
    kept = tokenize(tokenizer, train, 16)
    before = copy.deepcopy(kept)
    torch.manual_seed(0)
    model = load_classifier(str(model_dir), 2)
    train_and_evaluate(model, task, tokenizer, train, dev, TrainConfig(lr=1e-3, epochs=1, batch_size=8, max_length=16),
                       device="cpu", progress=False)
    assert tokenize(tokenizer, train, 16) is kept and kept == before


def test_wrappers_of_one_configuration_share_one_projection(folders):
    model_dir, _ = folders
    cache = ProjectionCache(capacity=2)

    def wrap(d, seed):
        return SubspaceWrapper(load_classifier(str(model_dir), 2), config=SubspaceConfig(d=d, seed=seed),
                               projections=cache)

    first = wrap(40, 0)
    assert wrap(40, 0).projection is first.projection
    other_seed, other_d = wrap(40, 1), wrap(41, 0)
    assert len({id(w.projection) for w in (first, other_seed, other_d)}) == 3
    assert len(cache) == 2  # the least recently used (d=40, seed 0) went
    assert wrap(40, 0).projection is not first.projection
    with pytest.raises(ValueError, match="capacity"):
        ProjectionCache(capacity=0)


def test_a_shared_projection_trains_exactly_as_a_fresh_one(folders):
    model_dir, glue = folders
    task, tokenizer = get_task("sst2"), load_tokenizer(str(model_dir))
    train, dev = load_task(task, glue)
    config = TrainConfig(lr=1e-1, epochs=2, batch_size=8, max_length=16)
    cache = ProjectionCache()

    def run(projections):
        torch.manual_seed(0)
        model = load_classifier(str(model_dir), 2)
        wrapper = SubspaceWrapper(model, config=SubspaceConfig(d=64), projections=projections)
        return train_and_evaluate(wrapper, task, tokenizer, train, dev, config, device="cpu", progress=False).to_dict()

    fresh = run(None)
    first, second = run(cache), run(cache)  # the second reuses the first's projection and its drawn state
    for result in (first, second):
        assert (result["metrics"], result["train_loss"]) == (fresh["metrics"], fresh["train_loss"])


def test_evaluation_projects_once_and_follows_every_update(folders):
    model_dir, glue = folders
    tokenizer = load_tokenizer(str(model_dir))
    train, _ = load_task("sst2", glue)
    features = tokenize(tokenizer, train, 16)
    batches = [{k: v for k, v in collate(tokenizer, features[i:i + 8], train.labels[i:i + 8], False).items()
                if k != "labels"} for i in range(0, 24, 8)]
    torch.manual_seed(0)
    wrapper = SubspaceWrapper(load_classifier(str(model_dir), 2), d=64).eval()
    calls = []
    project = wrapper.projection.add_to
    wrapper.projection.add_to = lambda *args: calls.append(1) or project(*args)

    def reference(batch):  # θ projected afresh for this batch
        with torch.no_grad():
            return functional_call(wrapper.model, wrapper.effective_parameters(), (), batch).logits

    with torch.no_grad():
        wrapper.theta_d.normal_()
        outputs = [wrapper(**batch).logits for batch in batches]
    assert len(calls) == 1
    calls.clear()
    assert all(torch.equal(out, reference(batch)) for out, batch in zip(outputs, batches, strict=True))

    with torch.no_grad():
        wrapper.theta_d.mul_(0.5)  # an in-place update, as optimizer.step() makes
        assert torch.equal(wrapper(**batches[0]).logits, reference(batches[0]))
        wrapper.model.classifier.bias.add_(1.0)  # θ₀ changed in place too
        assert torch.equal(wrapper(**batches[0]).logits, reference(batches[0]))
    wrapper.train()
    with torch.no_grad():
        calls.clear()
        wrapper(**batches[0])
        wrapper(**batches[1])
    assert len(calls) == 1  # train() dropped the kept θ; it is projected once again
    wrapper(**batches[0]).logits.sum().backward()  # with autograd: projected per call, gradient reaches θ_d
    assert wrapper.theta_d.grad is not None and wrapper.theta_d.grad.abs().sum() > 0
