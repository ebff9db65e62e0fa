"""Bottleneck adapters (houlsby, pfeiffer): closed-form counts, an exact pretrained start, where they
act, seeding, and the refusal of models without BERT-style layers."""

import copy

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count

from .conftest import tiny_bert_classifier, tiny_roberta_classifier
from .test_methods_contract import inputs

MODELS = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}
M = 4  # bottleneck; the tiny models have L = 2 layers of width d = 32
# Per adapter 2·m·d + m + d = 2·4·32 + 4 + 32 = 292; Houlsby adds 2 LayerNorms of 2d per layer.
EXPECTED = {"houlsby": 2 * (2 * 292 + 2 * 2 * 32), "pfeiffer": 2 * 292}
HEAD = {"bert": 32 * 2 + 2, "roberta": (32 * 32 + 32) + (32 * 3 + 3)}  # classifier (RoBERTa: dense + out_proj)


def tiny_gpt2_classifier():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=2, pad_token_id=0)
    return GPT2ForSequenceClassification(config).eval()


def build(name, family="bert", head="frozen", seed=0, m=M):
    model = MODELS[family]()
    reference = copy.deepcopy(model)
    heads = head_parameter_names(model)
    built = get_method(name).build(model, m, head=head, head_names=heads, seed=seed)
    return built, reference, heads


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("head", ["frozen", "train"])
@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_trainable_count_is_the_closed_form(name, head, family):
    built, _, heads = build(name, family, head)
    expected = EXPECTED[name] + (HEAD[family] if head == "train" else 0)
    counts = get_method(name).counts(built, M, head=head, head_names=heads)
    assert counts.trainable == counts.stored == trainable_count(built) == expected
    assert counts.head == (HEAD[family] if head == "train" else 0)


@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_only_adapters_and_houlsbys_layer_norms_are_trained(name):
    built, _, _ = build(name)
    trained = {n for n, p in built.named_parameters() if p.requires_grad}
    layer_norms = {n for n in trained if "LayerNorm" in n}
    assert trained - layer_norms == {n for n, _ in built.adapters.named_parameters(prefix="adapters")}
    if name == "houlsby":
        assert layer_norms == {f"model.bert.encoder.layer.{i}.{site}.LayerNorm.{p}" for i in range(2)
                               for site in ("attention.output", "output") for p in ("weight", "bias")}
    else:
        assert not layer_norms


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_the_start_is_exactly_pretrained_in_train_and_eval_mode(name, family):
    built, reference, _ = build(name, family, m=16)
    batch = inputs(reference)
    torch.testing.assert_close(built.eval()(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-6)
    torch.manual_seed(1)
    trained = built.train()(**batch).logits
    torch.manual_seed(1)
    torch.testing.assert_close(trained, reference.train()(**batch).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "index", "site"), [("houlsby", -2, "attention.output.dense"),
                                                     ("houlsby", -1, "output.dense"), ("pfeiffer", -1, "output.dense")])
def test_an_adapter_acts_on_the_projection_output_before_residual_and_layer_norm(name, index, site):
    """b₂ of an adapter adds to its projection's output: the same as adding it to that projection's bias
    (adapters are ordered by layer, then site; ``index`` picks one of layer 1's)."""
    built, reference, _ = build(name)
    bias = torch.linspace(-1, 1, 32)  # not constant: LayerNorm would remove a constant shift
    with torch.no_grad():
        built.adapters[index].up_bias.copy_(bias)
        reference.bert.encoder.layer[1].get_submodule(site).bias.add_(bias)
    batch = inputs(reference)
    torch.testing.assert_close(built(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_the_seed_alone_decides_the_built_weights(name):
    first, second, other = (build(name, seed=seed)[0] for seed in (7, 7, 8))
    a, b, c = (dict(x.adapters.named_parameters()) for x in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["0.down"], c["0.down"])
    assert all(not v.any() for k, v in a.items() if not k.endswith(".down"))


def test_building_leaves_the_global_rng_alone():
    model = tiny_bert_classifier()
    state = torch.random.get_rng_state()
    get_method("houlsby").build(model, M, head="frozen", head_names=head_parameter_names(model), seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_deep_copy_carries_its_own_adapters():
    built, reference, _ = build("pfeiffer")
    twin = copy.deepcopy(built)
    with torch.no_grad():
        twin.adapters[0].up_bias.copy_(torch.linspace(-1, 1, 32))  # not constant: LayerNorm removes those
    batch = inputs(reference)
    torch.testing.assert_close(built(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-6)
    assert not torch.allclose(twin(**batch).logits, reference(**batch).logits)


@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_a_model_without_bert_layers_is_refused_naming_its_architecture(name):
    model = tiny_gpt2_classifier()
    method = get_method(name)
    reason = method.unsupported(model)
    assert "GPT2ForSequenceClassification" in reason and "gpt2" in reason and "\n" not in reason
    assert method.unsupported(tiny_roberta_classifier()) is None
    with pytest.raises(ConfigError, match="GPT2ForSequenceClassification"):
        method.build(model, M, head="frozen", head_names=head_parameter_names(model), seed=0)
