"""Masking: its counts in closed form, the straight-through estimator (gradchecked in float64), the
exact initial keep fraction, binary masks on the top layers only, and gradients reaching the scores."""

import copy
import math

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count
from intrinsic.methods.masking import BinaryMask, Masking, ScoreMask

from .conftest import tiny_bert_classifier, tiny_gpt2, tiny_roberta_classifier
from .test_methods_contract import inputs

MASKED = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
          "intermediate.dense", "output.dense")


def build(factory=tiny_bert_classifier, layers=1, head="frozen", seed=0):
    model = factory()
    reference = copy.deepcopy(model)
    method = get_method("masking")
    heads = head_parameter_names(model)
    built = method.build(model, method.check(layers, head), head=head, head_names=heads, seed=seed)
    return method, built, reference, heads


def masked_modules(built):
    return {name: module for name, module in built.named_modules() if hasattr(module, "parametrizations")}


@pytest.mark.parametrize("head", ["frozen", "train"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_counts_are_one_score_per_masked_weight_and_its_bits_stored(family, layers, head):
    factory = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}[family]
    method, built, _, heads = build(factory, layers, head)
    d, ffn = 32, 37  # Q, K, V, attention output: d × d each; FFN in d → ffn, out ffn → d
    masked = layers * (4 * d * d + d * ffn + ffn * d)
    head_size = {"bert": 32 * 2 + 2, "roberta": (32 * 32 + 32) + (32 * 3 + 3)}[family] if head == "train" else 0
    counts = method.counts(built, layers, head=head, head_names=heads)
    assert (counts.trainable, counts.stored, counts.head) == (masked + head_size, -(-masked // 32) + head_size,
                                                              head_size)
    assert counts.trainable == trainable_count(built)


def test_the_straight_through_estimator_passes_the_gradient_unchanged():
    """BinaryMask's backward claims ∂m/∂s = 1. That is the true derivative of
    s ↦ m(s) + (s − m(s)) with the bracket held constant, whose value is s: gradcheck that."""
    threshold = 0.1
    scores = torch.linspace(-1, 1, 23, dtype=torch.float64).requires_grad_()

    def surrogate(s):
        return BinaryMask.apply(s, threshold) + (s - (s >= threshold).double()).detach()

    assert torch.autograd.gradcheck(surrogate, (scores,), eps=1e-6, atol=1e-9)
    mask = BinaryMask.apply(scores, threshold)
    assert mask.dtype == torch.float64 and torch.equal(mask, (scores >= threshold).double())


def test_the_masked_weight_has_the_exact_gradient_in_the_weight_and_the_ste_one_in_the_scores():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 7, dtype=torch.float64, generator=g).requires_grad_()
    mask = ScoreMask(torch.randn(5, 7, dtype=torch.float64, generator=g), threshold=0.0)
    assert torch.autograd.gradcheck(mask, (weight,), eps=1e-6, atol=1e-9)
    upstream = torch.randn(5, 7, dtype=torch.float64, generator=g)
    mask(weight).backward(upstream)
    assert torch.equal(mask.scores.grad, upstream * weight.detach())  # ∂(W ⊙ m)/∂s := W under the STE


@pytest.mark.parametrize("keep", [0.95, 0.9])
def test_the_initial_keep_fraction_is_exact_and_drawn_with_the_seed(keep):
    def masks(seed):
        model = tiny_bert_classifier()
        built = Masking(keep=keep).build(model, 2, head="frozen", head_names=head_parameter_names(model), seed=seed)
        return {n: m.parametrizations.weight[0].mask() for n, m in masked_modules(built).items()}

    first, again, other = masks(0), masks(0), masks(1)
    assert len(first) == 2 * len(MASKED)
    for mask in first.values():
        assert int(mask.sum()) == round(keep * mask.numel())
    assert all(torch.equal(first[n], again[n]) for n in first)
    assert not all(torch.equal(first[n], other[n]) for n in first)


def test_masks_are_binary_and_only_on_the_top_layers():
    _, built, reference, _ = build(layers=1)
    expected = {f"bert.encoder.layer.1.{path}" for path in MASKED}
    assert set(masked_modules(built)) == expected
    theta0 = dict(reference.named_parameters())
    for name, module in masked_modules(built).items():
        mask = module.parametrizations.weight[0].mask()
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert torch.equal(module.weight, theta0[f"{name}.weight"] * mask)
    for name, value in built.named_parameters():
        if "parametrizations" not in name:
            assert torch.equal(value, theta0[name]) and not value.requires_grad
    batch = inputs(reference)
    assert not torch.allclose(built.eval()(**batch).logits, reference(**batch).logits)  # 5 % of weights zeroed


def test_gradients_reach_the_scores_and_nothing_frozen():
    _, built, reference, _ = build(tiny_roberta_classifier, layers=2)
    built.train()
    built(**inputs(reference), labels=torch.tensor([0, 2])).loss.backward()
    for module in masked_modules(built).values():
        scores = module.parametrizations.weight[0].scores
        assert scores.grad is not None and scores.grad.abs().sum() > 0
        assert module.parametrizations.weight.original.grad is None
    assert all(p.grad is None for n, p in built.named_parameters() if "scores" not in n)


def test_too_many_layers_and_other_architectures_are_refused():
    with pytest.raises(ConfigError, match="layers"):
        build(layers=3)
    method = get_method("masking")
    assert "GPT2LMHeadModel" in method.unsupported(tiny_gpt2())
    assert method.unsupported(tiny_bert_classifier()) is None
    assert not method.starts_at_pretrained and math.isclose(method.keep, 0.95)
