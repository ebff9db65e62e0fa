"""The methods built on ``peft`` (``intrinsic.methods.peft_tuners``): each count is the closed form written out here
from the tiny configs, the start is the pretrained function where claimed, the seed alone decides the random parts,
the head policy holds on the original head tensors, prompts respect padding, and without peft a ConfigError says
how to install it."""

import copy
import importlib.util
import sys

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import Counts, get_method, head_parameter_names, trainable_count

from .conftest import tiny_bert_classifier, tiny_roberta_classifier

needs_peft = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed")

MODELS = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}
D, L, FF = 32, 2, 37  # hidden size, layers, feed-forward width of both tiny models

# (method, knob) -> (trainable, stored), written out from the papers' definitions.
EXPECTED = {
    ("lora", 2): (2 * L * 2 * (D + D),) * 2,  # W_q and W_v, r (d_in + d_out) each
    ("lora", 5): (2 * L * 5 * (D + D),) * 2,
    ("prompt-tuning", 3): (3 * D,) * 2,
    ("prompt-tuning", 20): (20 * D,) * 2,
    ("p-tuning", 3): (3 * D + 3 * (D * D + D), 3 * D),  # prompt embedding + MLP D->D->D->D; stores the prompts
    ("ia3", None): (L * (D + D + FF),) * 2,  # keys, values, feed-forward activations
    ("vera", 2): (2 * L * (D + 2),) * 2,  # λ_b (d_out) + λ_d (r) per matrix
    ("vera", 50): (2 * L * (D + 50),) * 2,  # r may exceed d
    ("fourierft", 8): (2 * L * 8,) * 2,
    ("fourierft", 1000): (2 * L * 1000,) * 2,
    ("unilora", 32): (32,) * 2,
    ("unilora", 1024): (1024,) * 2,  # D = 2L · 4 · (D + D) LoRA entries, each θ_d entry used once
}
SMALL = {"lora": 2, "prompt-tuning": 3, "p-tuning": 3, "ia3": None, "vera": 2, "fourierft": 8, "unilora": 32}
PEFT_METHODS = tuple(SMALL)
RANDOM = ("lora", "prompt-tuning", "p-tuning", "vera", "fourierft", "unilora")  # seed-dependent builds (not IA³)


def build(name, family="bert", knob="small", head="frozen", seed=0, head_names=None):
    model = MODELS[family]()
    reference = copy.deepcopy(model)
    method = get_method(name)
    knob = method.check(SMALL[name] if knob == "small" else knob, head)
    heads = head_parameter_names(model) if head_names is None else head_names
    built = method.build(model, knob, head=head, head_names=heads, seed=seed)
    return method, built, model, reference, knob, heads


def batch(model, token_types=False):
    """Two rows, the second right-padded by three tokens (RoBERTa's start with <s>), token type ids if asked."""
    rows = torch.randint(5, 99, (2, 9), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(rows)
    rows[1, -3:], mask[1, -3:] = model.config.pad_token_id, 0
    if model.config.model_type == "roberta":
        rows[:, 0] = 0
    extra = {"token_type_ids": torch.zeros_like(rows)} if token_types else {}
    return {"input_ids": rows, "attention_mask": mask} | extra


def fingerprint(built):
    """Everything a build drew at random: parameters, buffers, and FourierFT's spectral positions."""
    tensors = dict(built.named_parameters()) | dict(built.named_buffers())
    for name, module in built.named_modules():
        for adapter, value in getattr(module, "indices", {}).items():
            tensors[f"{name}.indices.{adapter}"] = value
    return tensors


@needs_peft
@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize(("name", "knob"), list(EXPECTED))
def test_counts_are_the_closed_form(name, knob, family):
    method, built, _, _, knob, heads = build(name, family, knob)
    trainable, stored = EXPECTED[name, knob]
    assert trainable_count(built) == trainable
    assert method.counts(built, knob, head="frozen", head_names=heads) == Counts(trainable, stored, 0)


@needs_peft
@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("name", PEFT_METHODS)
def test_the_start_is_the_pretrained_function_exactly_when_claimed(name, family):
    method, built, _, reference, *_ = build(name, family)
    rows = batch(reference)
    built.eval()
    same = torch.equal(built(**rows).logits, reference(**rows).logits)
    assert same == method.starts_at_pretrained


@needs_peft
@pytest.mark.parametrize("name", PEFT_METHODS)
def test_the_seed_alone_decides_the_build(name):
    first = fingerprint(build(name, seed=1)[1])
    again = fingerprint(build(name, seed=1)[1])
    other = fingerprint(build(name, seed=2)[1])
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    differs = [k for k in first if not torch.equal(first[k], other[k])]
    assert bool(differs) == (name in RANDOM), differs


@needs_peft
def test_building_leaves_the_callers_random_stream_alone():
    model, method = tiny_bert_classifier(), get_method("lora")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    method.build(model, 2, head="frozen", head_names=head_parameter_names(model), seed=0)
    assert torch.equal(torch.rand(3), expected)


@needs_peft
@pytest.mark.parametrize("name", PEFT_METHODS)
def test_head_train_trains_the_original_head_tensors_and_frozen_keeps_a_new_pooler(name):
    model = MODELS["bert"]()
    heads = head_parameter_names(model) + ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]  # a "new" pooler
    head_size = sum(p.numel() for n, p in model.named_parameters() if n in heads)
    trainable = EXPECTED[name, SMALL[name]][0]
    for head in ("frozen", "train"):
        method, built, given, reference, knob, _ = build(name, head=head, head_names=heads)
        originals = dict(given.named_parameters())
        assert all(originals[n].requires_grad == (head == "train") for n in heads)
        assert not any("modules_to_save" in n or "original_module" in n for n, _ in built.named_parameters())
        counts = method.counts(built, knob, head=head, head_names=heads)
        extra = head_size if head == "train" else 0
        assert counts.head == extra and counts.trainable == trainable_count(built) == trainable + extra
        assert counts.stored == EXPECTED[name, SMALL[name]][1] + extra
    # the trained head is the one the model computes with: a step on it alone moves the logits
    rows = batch(reference)
    before = built.eval()(**rows).logits.detach()
    optimizer = torch.optim.SGD([originals[n] for n in heads], lr=1.0)
    built.train()(**rows, labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    assert not torch.equal(built.eval()(**rows).logits, before)


@needs_peft
@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("name", ["prompt-tuning", "p-tuning"])
def test_prompts_keep_the_output_shape_and_ignore_right_padding(name, family):
    _, built, _, reference, *_ = build(name, family)
    rows = batch(reference, token_types=family == "bert")
    built.eval()
    out = built(**rows, labels=torch.tensor([0, 1]))
    assert out.logits.shape == (2, reference.config.num_labels) and out.loss.ndim == 0
    alone = {k: v[1:, :6] for k, v in rows.items()}  # the padded row without its padding
    torch.testing.assert_close(built(**alone).logits[0], out.logits[1], rtol=0, atol=1e-6)


@needs_peft
@pytest.mark.parametrize("name", ["unilora"])
def test_a_start_off_the_pretrained_function_still_trains(name):
    _, built, _, reference, *_ = build(name, "roberta")
    loss = built.train()(**batch(reference), labels=torch.tensor([0, 1])).loss
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in built.parameters() if p.requires_grad)


@needs_peft
@pytest.mark.parametrize(("name", "knob", "limit"), [("lora", 33, 32), ("fourierft", D * D + 1, D * D),
                                                     ("unilora", 1025, 1024)])
def test_a_knob_beyond_what_the_model_allows_is_a_config_error(name, knob, limit):
    with pytest.raises(ConfigError, match=f"at most {limit}"):
        build(name, knob=knob)
    build(name, knob=limit)


def tiny_distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=2,
                                                                hidden_dim=37, max_position_embeddings=64))


def tiny_gpt2_classifier():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    return GPT2ForSequenceClassification(GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                                    pad_token_id=0))


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_unsupported_architectures_are_named(name):
    method = get_method(name)
    for family in MODELS:
        assert method.unsupported(MODELS[family]()) is None
    other = tiny_gpt2_classifier() if name in ("prompt-tuning", "p-tuning") else tiny_distilbert()
    reason = method.unsupported(other)
    assert reason is not None and type(other).__name__ in reason
    if importlib.util.find_spec("peft") is not None:
        with pytest.raises(ConfigError, match=type(other).__name__):
            method.build(other, method.check(SMALL[name], "frozen"), head="frozen", head_names=[], seed=0)


@pytest.mark.parametrize("name", PEFT_METHODS)
def test_without_peft_building_says_how_to_install_it(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    method = get_method(name)
    model = tiny_bert_classifier()
    with pytest.raises(ConfigError, match=r"needs the peft package: pip install 'intrinsic\[peft\]'"):
        method.build(model, method.check(SMALL[name], "frozen"), head="frozen",
                     head_names=head_parameter_names(model), seed=0)
