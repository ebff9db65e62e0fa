"""What every registered fine-tuning method promises, checked on a tiny BERT and a tiny RoBERTa:
its counts match what the optimizer sees, it starts from the pretrained function where it says so,
the head policy holds, and one training step changes the output and nothing frozen."""

import copy

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import METHOD_NAMES, get_method, head_parameter_names, trainable_count
from intrinsic.training import _optimizer_groups

from .conftest import tiny_bert_classifier, tiny_roberta_classifier

# A small knob per method: tiny models have 2 layers of width 32.
SMALL_KNOB = {"did": 64, "said": 128, "lora": 2, "prompt-tuning": 3, "p-tuning": 3, "ia3": None, "vera": 2,
              "fourierft": 8, "unilora": 256, "prefix-tuning": 3, "houlsby": 4, "pfeiffer": 4, "bitfit": None,
              "bitfit-subset": None, "diff-pruning": 100, "masking": 1, "pafi": 100, "hiwi": 2, "head-only": None}
MODELS = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}


def inputs(model):
    """Two rows, the second padded by three tokens."""
    torch.manual_seed(3)
    ids = torch.randint(5, 99, (2, 9))
    mask = torch.ones_like(ids)
    pad = model.config.pad_token_id
    ids[1, -3:], mask[1, -3:] = pad, 0
    if model.config.model_type == "roberta":
        ids[:, 0] = 0  # <s>
    return {"input_ids": ids, "attention_mask": mask}


def build(name, family, head=None):
    model = MODELS[family]()
    reference = copy.deepcopy(model)
    method = get_method(name)
    head = head or ("frozen" if "frozen" in method.head_policies else method.head_policies[0])
    knob = method.check(SMALL_KNOB[name], head)
    heads = head_parameter_names(model)
    built = method.build(model, knob, head=head, head_names=heads, seed=0)
    return method, built, reference, knob, heads


def test_every_method_has_a_small_knob_here():
    assert set(SMALL_KNOB) == set(METHOD_NAMES)


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_counts_are_what_the_optimizer_updates_and_the_start_is_pretrained(name, family):
    method, built, reference, knob, heads = build(name, family)
    head = "frozen" if "frozen" in method.head_policies else "train"  # head-only trains the head by definition
    counts = method.counts(built, knob, head=head, head_names=heads)
    assert counts.trainable == trainable_count(built) > 0
    assert counts.head == (0 if head == "frozen" else counts.trainable) and 0 < counts.stored
    built.eval()
    batch = inputs(reference)
    if method.starts_at_pretrained:
        torch.testing.assert_close(built(**batch).logits, reference(**batch).logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_the_head_is_trained_only_under_head_train(name):
    method = get_method(name)
    for head in method.head_policies:
        _, built, reference, knob, heads = build(name, "bert", head)
        counts = method.counts(built, knob, head=head, head_names=heads)
        head_size = sum(p.numel() for n, p in reference.named_parameters() if n in heads)
        assert counts.head == (head_size if head == "train" else 0)
        assert counts.trainable == trainable_count(built)
    for head in {"frozen", "train", "projected"} - set(method.head_policies):
        with pytest.raises(ConfigError, match="head"):
            method.check(SMALL_KNOB[name], head)


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_one_step_trains_and_leaves_the_frozen_head_alone(name, family):
    heads_trained = name == "head-only"  # it trains the head by definition: only the step's effect is checked
    method, built, reference, knob, heads = build(name, family)
    head_before = {n: p.detach().clone() for n, p in reference.named_parameters() if n in heads}
    batch = inputs(reference)
    built.train()
    optimizer = torch.optim.AdamW(_optimizer_groups(built, 1e-2), lr=1e-2, weight_decay=0.0)
    before = built.eval()(**batch).logits.detach()
    built.train()
    loss = built(**batch, labels=torch.tensor([0, 1])).loss
    regularization = getattr(built, "regularization", None)
    if regularization is not None:
        loss = loss + regularization()
    loss.backward()
    optimizer.step()
    assert not torch.equal(built.eval()(**batch).logits, before)
    if heads_trained:
        return
    after = {n.split("base_model.model.")[-1]: p for n, p in built.named_parameters()}
    for name_, value in head_before.items():
        match = [p for n, p in after.items() if n.endswith(name_)]
        assert all(torch.equal(p, value) for p in match), f"frozen head tensor {name_} changed"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_a_knob_outside_its_range_is_a_config_error(name):
    method = get_method(name)
    if method.knob is None:  # a method of fixed size takes no knob at all
        with pytest.raises(ConfigError, match="no size setting"):
            method.check(1, method.head_policies[0])
    else:
        with pytest.raises(ConfigError, match=f"\\({method.knob.name}\\)"):
            method.check(method.knob.low - 1, "frozen")


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ConfigError, match="lora"):
        get_method("lorra")
