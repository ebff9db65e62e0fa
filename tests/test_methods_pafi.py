"""PaFi (the k smallest |θ₀| of the layers' weight matrices) and HiWi (an adapter fed the FFN weights):
the selection against an explicit sort, frozen entries bit for bit, closed-form counts, and HiWi's
merge into plain weights."""

import copy

import pytest
import torch
from torch.nn.utils import parametrize

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count
from intrinsic.methods.pafi import merge

from .conftest import tiny_bert_classifier, tiny_roberta_classifier


def tiny_gpt2_classifier():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    torch.manual_seed(0)
    return GPT2ForSequenceClassification(GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                                    pad_token_id=0)).eval()


MODELS = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier, "gpt2": tiny_gpt2_classifier}
BATCH = {"input_ids": torch.randint(5, 99, (2, 9), generator=torch.Generator().manual_seed(1))}


def build(name, model, knob, head="frozen", seed=0):
    method = get_method(name)
    heads = head_parameter_names(model)
    return method, method.build(model, method.check(knob, head), head=head, head_names=heads, seed=seed), heads


def step(model, lr=1e-2):
    """One AdamW step on a two-row batch."""
    model.train()
    model(**BATCH, labels=torch.tensor([0, 1])).loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr).step()
    return model.eval()


def eligible(model):
    """(name, θ₀) of PaFi's eligible tensors, written out: the layers' 2-D weights, in order."""
    return [(n, p.detach().clone()) for n, p in model.named_parameters()
            if (".layer." in n or ".h." in n) and n.endswith(".weight") and p.dim() == 2]


def effective(model, name):
    """A weight's current value (through its parametrization, if any)."""
    module_name, attribute = name.rsplit(".", 1)
    return getattr(model.get_submodule(module_name), attribute).detach()


@pytest.mark.parametrize("family", MODELS)
def test_the_eligible_entries_follow_the_closed_form(family):
    model = MODELS[family]()
    config = model.config
    d, layers = config.hidden_size, config.num_hidden_layers
    d_ff = getattr(config, "intermediate_size", None) or 4 * d
    per_layer = 12 * d * d if family == "gpt2" else 4 * d * d + 2 * d * d_ff  # GPT-2: qkv 3d², out d², FFN 8d²
    tensors = eligible(model)
    assert sum(t.numel() for _, t in tensors) == layers * per_layer
    method, built_model, heads = build("pafi", model, layers * per_layer)
    assert trainable_count(built_model) == layers * per_layer
    with pytest.raises(ConfigError, match="at most"):
        build("pafi", MODELS[family](), layers * per_layer + 1)


@pytest.mark.parametrize("k", [1, 100, 2000])
def test_pafi_picks_the_k_smallest_and_breaks_ties_by_position(k):
    model = tiny_bert_classifier()
    with torch.no_grad():  # ties at zero: 37 in an early tensor, 64 in a later one, more than k = 1 or 100
        model.bert.encoder.layer[1].attention.self.query.weight[:2] = 0
        model.bert.encoder.layer[0].output.dense.weight[0] = 0
    tensors = eligible(model)
    order = torch.cat([t.abs().flatten() for _, t in tensors]).sort(stable=True).indices[:k]
    expected = torch.zeros(sum(t.numel() for _, t in tensors), dtype=torch.bool)
    expected[order] = True
    _, built_model, _ = build("pafi", model, k)
    chosen = []
    for name, tensor in tensors:
        module = built_model.get_submodule(name.rsplit(".", 1)[0])
        mask = torch.zeros(tensor.numel(), dtype=torch.bool)
        if parametrize.is_parametrized(module, "weight"):
            mask[module.parametrizations.weight[0].index] = True
        chosen.append(mask)
    assert torch.equal(torch.cat(chosen), expected)


@pytest.mark.parametrize("family", MODELS)
def test_pafi_starts_pretrained_and_a_step_moves_only_the_chosen_entries(family):
    model = MODELS[family]()
    reference = copy.deepcopy(model)
    before = dict(eligible(model))
    others = {n: p.detach().clone() for n, p in model.named_parameters() if n not in before}
    _, built_model, _ = build("pafi", model, 100)
    torch.testing.assert_close(built_model(**BATCH).logits, reference(**BATCH).logits, rtol=0, atol=1e-6)
    step(built_model)
    moved = 0
    for name, value in before.items():
        module = built_model.get_submodule(name.rsplit(".", 1)[0])
        now = effective(built_model, name)
        index = module.parametrizations.weight[0].index if parametrize.is_parametrized(module) else []
        frozen = torch.ones(value.numel(), dtype=torch.bool)
        frozen[index] = False
        assert torch.equal(now.flatten()[frozen], value.flatten()[frozen]), name
        assert torch.equal(module.parametrizations.weight.original if len(index) else module.weight, value)
        moved += int((now.flatten() != value.flatten()).sum())
    assert 0 < moved <= 100
    after = dict(built_model.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in others.items())


def hiwi_closed_form(model, r):
    """(trainable, stored): A and B of d_out × r each per FFN matrix, d_out = d_ff then d; the merged
    matrices, d·d_ff each, two per layer."""
    config = model.config
    d, layers = config.hidden_size, config.num_hidden_layers
    d_ff = getattr(config, "intermediate_size", None) or 4 * d
    return layers * 2 * r * (d_ff + d), layers * 2 * d * d_ff


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("head", ["frozen", "train"])
def test_hiwi_counts_follow_the_closed_form(family, head):
    model = MODELS[family]()
    trainable, stored = hiwi_closed_form(model, 3)
    heads = head_parameter_names(model)
    head_size = sum(p.numel() for n, p in model.named_parameters() if n in heads) if head == "train" else 0
    method, built_model, heads = build("hiwi", model, 3, head)
    counts = method.counts(built_model, 3, head=head, head_names=heads)
    assert (counts.trainable, counts.stored, counts.head) == (trainable + head_size, stored + head_size, head_size)
    assert trainable_count(built_model) == counts.trainable


def test_hiwi_adapts_both_ffn_matrices_along_their_output_dimension():
    _, model, _ = build("hiwi", tiny_bert_classifier(), 3)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    layer = "bert.encoder.layer.0"
    assert shapes[f"{layer}.intermediate.dense.parametrizations.weight.0.down"] == (37, 3)
    assert shapes[f"{layer}.intermediate.dense.parametrizations.weight.0.up"] == (3, 37)
    assert shapes[f"{layer}.output.dense.parametrizations.weight.0.down"] == (32, 3)
    assert len(shapes) == 2 * 2 * 2


@pytest.mark.parametrize("family", MODELS)
def test_hiwi_merged_equals_parametrized_and_is_a_plain_model(family):
    model = MODELS[family]()
    keys = set(model.state_dict())
    _, built_model, _ = build("hiwi", model, 2)
    step(built_model)
    with torch.no_grad():
        trained = built_model(**BATCH).logits
    assert not torch.allclose(trained, MODELS[family]()(**BATCH).logits)
    merged = merge(built_model)
    assert not any(parametrize.is_parametrized(m) for m in merged.modules())
    assert set(merged.state_dict()) == keys
    torch.testing.assert_close(merged(**BATCH).logits, trained, rtol=0, atol=1e-6)


def test_hiwi_is_seeded():
    def downs(seed):
        _, model, _ = build("hiwi", tiny_bert_classifier(), 2, seed=seed)
        return [p.detach() for n, p in model.named_parameters() if n.endswith(".down")]

    assert all(torch.equal(a, b) for a, b in zip(downs(0), downs(0), strict=True))
    assert not torch.equal(downs(0)[0], downs(1)[0])


def test_gated_ffns_and_models_without_layers_are_refused_by_name():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    llama = LlamaForSequenceClassification(LlamaConfig(vocab_size=99, hidden_size=16, intermediate_size=32,
                                                       num_hidden_layers=1, num_attention_heads=2))
    assert "LlamaForSequenceClassification" in get_method("hiwi").unsupported(llama)
    assert get_method("pafi").unsupported(llama) is None
    assert "Sequential" in get_method("pafi").unsupported(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_real_minilm_sizes(shared):
    from transformers import AutoModelForSequenceClassification

    folder = shared / "models" / "paraphrase-MiniLM-L3-v2"
    model, info = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, output_loading_info=True)
    heads = head_parameter_names(model, info["missing_keys"])
    reference = copy.deepcopy(model)
    total = sum(t.numel() for _, t in eligible(model))
    pafi = get_method("pafi")
    assert total == 3 * (4 * 384 * 384 + 2 * 384 * 1536) == 5_308_416
    assert pafi.knob.default == round(0.005 * total)
    built_model = pafi.build(model, pafi.knob.default, head="frozen", head_names=heads, seed=0)
    assert trainable_count(built_model) == pafi.counts(built_model, pafi.knob.default, head="frozen",
                                                       head_names=heads).trainable == 26_542
    with torch.no_grad():
        torch.testing.assert_close(built_model(**BATCH).logits, reference(**BATCH).logits, rtol=0, atol=1e-6)
    hiwi = get_method("hiwi")
    built_model = hiwi.build(reference, 8, head="frozen", head_names=heads, seed=0)
    counts = hiwi.counts(built_model, 8, head="frozen", head_names=heads)
    assert (counts.trainable, counts.stored) == (3 * 2 * 8 * (1536 + 384), 3 * 2 * 384 * 1536) == (92_160, 3_538_944)
    assert trainable_count(built_model) == counts.trainable
