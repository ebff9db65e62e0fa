"""Diff pruning: its counts in closed form, the pretrained start, the gates and their L0 penalty,
the fixed top-k mask of phase 2, and the two-phase fit (faked, then real on a tiny BERT)."""

import copy
import math

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count
from intrinsic.methods.diff_pruning import GatedDiff
from intrinsic.tasks import Split, get_task
from intrinsic.training import RunResult, TrainConfig, _optimizer_groups, train_and_evaluate

from .conftest import tiny_bert_classifier, tiny_bert_mlm, tiny_roberta_classifier
from .test_methods_contract import inputs


def build(factory=tiny_bert_classifier, k=100, head="frozen"):
    model = factory()
    reference = copy.deepcopy(model)
    method = get_method("diff-pruning")
    heads = head_parameter_names(model)
    built = method.build(model, method.check(k, head), head=head, head_names=heads, seed=0)
    return method, built, reference, heads


def effective(built, name):
    """The tensor the model computes with under ``name`` (θ₀ + diff)."""
    path, _, attr = name.rpartition(".")
    return getattr(built.model.get_submodule(path), attr)


def randomise(built, seed=1):
    """Random w and α (α around 0, so that gates are partly open), for tests past the start."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for gate in built.gates():
            gate.w.copy_(torch.randn(gate.w.shape, generator=g))
            gate.alpha.copy_(2 * torch.randn(gate.alpha.shape, generator=g))


def encoder_numbers(config, positions, pooler):
    """Every non-head number of a tiny BERT-style encoder, from its config."""
    d, ffn = config.hidden_size, config.intermediate_size
    embeddings = (config.vocab_size + positions + config.type_vocab_size) * d + 2 * d
    layer = 4 * (d * d + d) + 2 * d + (d * ffn + ffn) + (ffn * d + d) + 2 * d
    return embeddings + config.num_hidden_layers * layer + (d * d + d if pooler else 0)


@pytest.mark.parametrize("head", ["frozen", "train"])
@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_counts_are_two_numbers_per_gated_entry_while_training_and_k_stored(family, head):
    factory = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}[family]
    method, built, reference, heads = build(factory, k=77, head=head)
    config = reference.config
    if family == "bert":  # pooler in the encoder; classifier d → 2
        eligible = encoder_numbers(config, 64, pooler=True)
        head_size = 32 * 2 + 2
    else:  # no pooler; classifier dense d → d, out_proj d → 3
        eligible = encoder_numbers(config, 66, pooler=False)
        head_size = (32 * 32 + 32) + (32 * 3 + 3)
    head_size = head_size if head == "train" else 0
    counts = method.counts(built, 77, head=head, head_names=heads)
    assert (counts.trainable, counts.stored, counts.head) == (2 * eligible + head_size, 77 + head_size, head_size)
    assert counts.trainable == trainable_count(built)


def test_it_starts_at_the_pretrained_function_and_weights():
    _, built, reference, _ = build()
    batch = inputs(reference)
    torch.testing.assert_close(built.eval()(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-6)
    built.train()  # sampled gates times w = 0: still exactly θ₀
    for name, value in reference.named_parameters():
        assert torch.equal(effective(built, name), value)


def test_evaluation_uses_the_deterministic_gate():
    _, built, reference, _ = build()
    randomise(built)
    built.eval()
    name = "bert.encoder.layer.1.attention.self.query.weight"
    gate = built.model.get_submodule("bert.encoder.layer.1.attention.self.query").parametrizations.weight[0]
    z = (torch.sigmoid(gate.alpha) * 3.0 - 1.5).clamp(0, 1)
    assert 0 < (z == 0).sum() and 0 < (z == 1).sum() and 0 < ((z > 0) & (z < 1)).sum()
    expected = dict(reference.named_parameters())[name] + z * gate.w
    torch.testing.assert_close(effective(built, name), expected, rtol=0, atol=0)
    built.train()
    torch.manual_seed(0)
    first = effective(built, name)
    assert not torch.equal(first, effective(built, name))  # sampled afresh on each use while training


def test_the_penalty_is_lambda_times_the_expected_l0_norm():
    _, built, _, _ = build()
    randomise(built, seed=4)
    alphas = torch.cat([g.alpha.detach().flatten() for g in built.gates()])
    left, right = -1.5, 1.5
    expected = 1.25e-7 * torch.sigmoid(alphas.double() - math.log(-left / right)).sum()
    assert math.isclose(built.regularization().item(), expected.item(), rel_tol=1e-5)
    assert built.regularization().requires_grad


def test_gates_train_at_their_own_rate():
    _, built, _, _ = build(head="train")
    diffs, gates = _optimizer_groups(built, 3e-4)
    assert diffs["lr"] == 3e-4 and gates["lr"] == 0.1
    assert {id(p) for p in gates["params"]} == {id(g.alpha) for g in built.gates()}
    expected = {id(g.w) for g in built.gates()} | {id(built.model.classifier.weight), id(built.model.classifier.bias)}
    assert {id(p) for p in diffs["params"]} == expected


def test_phase_two_keeps_exactly_the_top_k_diffs_and_leaves_the_rest_bit_identical():
    k = 100
    _, built, reference, heads = build(k=k)
    randomise(built)
    before = {n: built.model.get_submodule(n.rpartition(".")[0]).parametrizations[n.rpartition(".")[2]][0].diff()
              for n in built.shapes}
    magnitudes = torch.cat([d.abs().flatten() for d in before.values()])
    threshold = magnitudes.topk(k).values[-1]
    built.fix_mask()
    assert not built.gates() and built.regularization().item() == 0
    assert trainable_count(built) == k and len(_optimizer_groups(built, 1e-3)) == 1
    theta0 = dict(reference.named_parameters())

    def changed():
        return {n: effective(built, n) != theta0[n] for n in built.shapes}

    kept = changed()
    assert sum(int(c.sum()) for c in kept.values()) == k
    for name, where in kept.items():  # the kept entries carry on from phase 1, the others are θ₀ exactly
        assert torch.equal(effective(built, name)[where], (theta0[name] + before[name])[where])
        assert (before[name][where].abs() >= threshold).all()
        assert torch.equal(effective(built, name)[~where], theta0[name][~where])

    optimizer = torch.optim.AdamW(_optimizer_groups(built, 1e-2), weight_decay=0.1)
    built.train()
    built(**inputs(reference), labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    for name, where in changed().items():
        assert not (where & ~kept[name]).any()
        assert torch.equal(effective(built, name)[~kept[name]], theta0[name][~kept[name]])
    assert all(torch.equal(dict(built.model.named_parameters())[n], theta0[n]) for n in heads)


def test_fit_runs_two_phases_and_sums_their_cost():
    _, built, _, _ = build(k=10)
    calls = []
    results = [RunResult("ok", {"accuracy": 0.6}, 0.5, steps=3, seconds=1.25),
               RunResult("ok", {"accuracy": 0.7}, 0.4, steps=5, seconds=2.0, first_loss=0.9)]

    def train(model, **kwargs):
        calls.append((model, kwargs, len(model.gates()), trainable_count(model)))
        return results[len(calls) - 1]

    result = get_method("diff-pruning").fit(built, train, config="same", train="split")
    assert [(c[0], c[1]) for c in calls] == [(built, {"config": "same", "train": "split"})] * 2
    assert calls[0][2] > 0 and calls[1][2] == 0 and calls[1][3] == 10
    assert result.metrics == {"accuracy": 0.7} and result.first_loss == 0.9
    assert (result.steps, result.seconds) == (8, 3.25)


def test_a_failed_first_phase_is_returned_as_it_is():
    _, built, _, _ = build(k=10)
    failed = RunResult("failed", steps=2, seconds=0.5, error="loss became nan")
    calls = []
    result = get_method("diff-pruning").fit(built, lambda model, **kw: calls.append(1) or failed)
    assert result is failed and calls == [1] and built.gates()


def tiny_tokenizer(folder):
    from transformers import BertTokenizerFast

    words = ["good", "bad", "great", "awful", "movie", "film", "plot", "very", "not", "fine"]
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))


def test_a_real_two_phase_fit_on_a_tiny_bert(tmp_path):
    k = 50
    _, built, reference, _ = build(k=k)
    texts = [("good movie",), ("bad film",), ("great plot",), ("awful movie",), ("very good film",),
             ("not fine",), ("fine plot",), ("very bad plot",)]
    split = Split(texts, [1, 0, 1, 0, 1, 0, 1, 0])
    config = TrainConfig(lr=1e-2, epochs=2, batch_size=4, max_length=16)
    result = get_method("diff-pruning").fit(built, train_and_evaluate, task=get_task("sst2"),
                                            tokenizer=tiny_tokenizer(tmp_path), train=split, dev=split, config=config,
                                            device="cpu", progress=False)
    assert result.status == "ok" and result.steps == 2 * 4 and set(result.metrics) == {"accuracy"}
    theta0 = dict(reference.named_parameters())
    moved = sum(int((effective(built, n) != theta0[n]).sum()) for n in built.shapes)
    assert 0 < moved <= k and not built.gates()


def test_k_beyond_the_model_and_tied_weights_are_refused():
    with pytest.raises(ConfigError, match="k"):
        build(k=10**6)
    method = get_method("diff-pruning")
    assert "BertForMaskedLM" in method.unsupported(tiny_bert_mlm())
    assert method.unsupported(tiny_bert_classifier()) is None
    assert isinstance(build()[1].gates()[0], GatedDiff)
