"""The shared training loop on a tiny random BERT with the real MiniLM tokenizer and MRPC."""

import math

import pytest
import torch

from intrinsic import SubspaceWrapper
from intrinsic.tasks import get_task, load_task
from intrinsic.training import TrainConfig, train_and_evaluate


@pytest.fixture(scope="module")
def mrpc_small(shared):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "models" / "paraphrase-MiniLM-L3-v2")
    train, dev = load_task("mrpc", data_dir=shared / "data" / "glue", max_train_samples=96)
    return tokenizer, train, dev.head(64)


def tiny_model(num_labels=2):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128, num_labels=num_labels)
    return BertForSequenceClassification(config)


def run(model, mrpc_small, **overrides):
    tokenizer, train, dev = mrpc_small
    config = TrainConfig(**{"lr": 1e-3, "epochs": 1, "batch_size": 16, "max_length": 48, **overrides})
    return train_and_evaluate(model, get_task("mrpc"), tokenizer, train, dev, config, device="cpu", progress=False)


def test_full_fine_tuning_run_is_reproducible(mrpc_small):
    first, second = run(tiny_model(), mrpc_small), run(tiny_model(), mrpc_small)
    assert first.status == "ok" and first.steps == 6  # 96 examples / 16 per batch, 1 epoch
    assert set(first.metrics) == {"accuracy", "f1"} and 0 <= first.metrics["accuracy"] <= 1
    assert first.metrics == second.metrics and first.train_loss == second.train_loss


def test_a_validation_split_is_evaluated_beside_dev_and_the_first_loss_is_kept(mrpc_small):
    tokenizer, train, dev = mrpc_small
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=16, max_length=48)
    result = train_and_evaluate(tiny_model(), get_task("mrpc"), tokenizer, train, dev, config, device="cpu",
                                progress=False, validation=dev.head(32))
    plain = run(tiny_model(), mrpc_small)
    assert set(result.validation_metrics) == {"accuracy", "f1"} and plain.validation_metrics == {}
    assert result.metrics == plain.metrics  # evaluating a validation split changes nothing else
    assert result.first_loss == plain.first_loss and result.first_loss > 0


def test_subspace_run_trains_only_the_subspace(mrpc_small):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = SubspaceWrapper(model, d=50)
    result = run(wrapper, mrpc_small, lr=3e-2)
    assert result.status == "ok" and wrapper.theta_d.abs().sum() > 0
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_nan_loss_marks_the_run_failed_and_does_not_raise(mrpc_small):
    model = tiny_model()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    result = run(model, mrpc_small)
    assert result.status == "failed" and "loss became nan" in result.error and "learning rate" in result.error
    assert result.metrics == {}


def test_diverging_loss_marks_the_run_failed(mrpc_small):
    result = run(tiny_model(), mrpc_small, lr=50.0, epochs=4, divergence_factor=1.5)
    assert result.status == "failed"
    assert "diverged" in result.error or "loss became" in result.error


def test_regression_task_uses_the_single_output(shared):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "models" / "paraphrase-MiniLM-L3-v2")
    train, dev = load_task("stsb", data_dir=shared / "data" / "glue", max_train_samples=32)
    config = TrainConfig(lr=1e-3, epochs=1, batch_size=16, max_length=32)
    result = train_and_evaluate(tiny_model(num_labels=1), get_task("stsb"), tokenizer, train, dev.head(40),
                                config, device="cpu", progress=False)
    assert result.status == "ok" and set(result.metrics) == {"pearson", "spearman"}
    assert all(math.isfinite(v) for v in result.metrics.values())


def test_bad_hyperparameters_are_clear_errors():
    with pytest.raises(ValueError, match="lr must be positive"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(lr=1e-3, epochs=0)
