"""Prefix tuning: the closed-form count, and that the prefix enters only as extra keys and values:
masked out it restores the pretrained logits, positions are not shifted, padding changes nothing."""

import copy

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count

from .conftest import tiny_bert_classifier, tiny_roberta_classifier
from .test_methods_adapters import HEAD, tiny_gpt2_classifier
from .test_methods_contract import inputs

MODELS = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}
LENGTH = 3


def build(family="bert", head="frozen", seed=0, length=LENGTH):
    model = MODELS[family]()
    reference = copy.deepcopy(model)
    heads = head_parameter_names(model)
    built = get_method("prefix-tuning").build(model, length, head=head, head_names=heads, seed=seed)
    return built.eval(), reference, heads


def positions_seen(model, batch):
    """The position ids the model's (or a built model's inner model's) position table is indexed with."""
    seen = []
    handle = getattr(model, "model", model).base_model.embeddings.position_embeddings.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].expand(batch["input_ids"].shape)))
    try:
        logits = model(**batch).logits
    finally:
        handle.remove()
    return seen[0], logits


@pytest.mark.parametrize("family", MODELS)
@pytest.mark.parametrize("head", ["frozen", "train"])
def test_trainable_count_is_the_closed_form(head, family):
    built, _, heads = build(family, head)
    expected = 2 * LENGTH * 32 * 2 + (HEAD[family] if head == "train" else 0)  # 2·l·d·L (+ head)
    counts = get_method("prefix-tuning").counts(built, LENGTH, head=head, head_names=heads)
    assert counts.trainable == counts.stored == trainable_count(built) == expected
    assert counts.head == (HEAD[family] if head == "train" else 0)
    assert [n for n, p in built.named_parameters() if p.requires_grad and "classifier" not in n] == ["prefix"]


@pytest.mark.parametrize("family", MODELS)
def test_with_the_prefix_masked_out_the_logits_are_pretrained_and_positions_unshifted(family):
    built, reference, _ = build(family)
    batch = inputs(reference)
    with_prefix = built(**batch).logits
    # the prefix is live: 10 times the tolerance below (the tiny models' logits are all near 0.01)
    assert (with_prefix - reference(**batch).logits).abs().max() > 1e-5
    built.prefix_mask.zero_()
    positions, logits = positions_seen(built, batch)
    expected_positions, expected = positions_seen(reference, batch)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)
    assert torch.equal(positions, expected_positions)
    if family == "roberta":  # from padding_idx + 1; padded tokens stay at padding_idx
        pad = reference.config.pad_token_id
        assert positions[0].tolist() == list(range(pad + 1, pad + 10))
        assert positions[1].tolist() == list(range(pad + 1, pad + 7)) + [pad] * 3
    else:
        assert positions.tolist() == [list(range(9))] * 2


def test_shifted_positions_would_show_in_the_logits():
    """The masked-prefix check above has power: positions shifted by l change the pretrained logits."""
    model = tiny_bert_classifier()
    batch = inputs(model)
    shifted = torch.arange(LENGTH, LENGTH + 9).expand(2, -1)
    assert not torch.allclose(model(**batch, position_ids=shifted).logits, model(**batch).logits, atol=1e-4)


@pytest.mark.parametrize("family", MODELS)
def test_padding_in_the_batch_does_not_change_an_examples_logits(family):
    built, reference, _ = build(family)
    batch = inputs(reference)
    padded = built(**batch).logits[1]
    alone = built(input_ids=batch["input_ids"][1:, :6], attention_mask=batch["attention_mask"][1:, :6]).logits[0]
    torch.testing.assert_close(padded, alone, rtol=0, atol=1e-6)
    no_mask = built(input_ids=batch["input_ids"][:1]).logits[0]
    torch.testing.assert_close(built(**batch).logits[0], no_mask, rtol=0, atol=1e-6)


def test_the_seed_alone_decides_the_prefix():
    first, second, other = (build(seed=seed)[0] for seed in (5, 5, 6))
    assert first.prefix.shape == (2, 2, LENGTH, 32)
    assert torch.equal(first.prefix, second.prefix) and not torch.equal(first.prefix, other.prefix)


@torch.no_grad()
def test_the_prefix_starts_as_the_keys_and_values_of_real_tokens():
    """Layer 0's prefix at position j is the key (value) the frozen model computes for some
    non-padding vocabulary token at position j."""
    built, reference, _ = build()
    vocab = reference.config.vocab_size
    attention = reference.bert.encoder.layer[0].attention.self
    for j in range(LENGTH):
        embedded = reference.bert.embeddings(input_ids=torch.arange(vocab)[:, None],
                                             position_ids=torch.full((vocab, 1), j))[:, 0]
        for k, projection in enumerate((attention.key, attention.value)):
            distance = (projection(embedded) - built.prefix[0, k, j]).abs().amax(-1)
            assert distance.min() < 1e-5 and distance.argmin() != reference.config.pad_token_id


def test_a_prefix_longer_than_the_position_table_is_built_in_rows():
    built, reference, _ = build(length=100)  # the tiny BERT has 64 positions
    assert built.prefix.shape == (2, 2, 100, 32)
    batch = inputs(reference)
    assert built(**batch).logits.shape == (2, 2)


def test_a_model_without_bert_layers_is_refused_naming_its_architecture():
    model = tiny_gpt2_classifier()
    method = get_method("prefix-tuning")
    reason = method.unsupported(model)
    assert "GPT2ForSequenceClassification" in reason and "gpt2" in reason and "\n" not in reason
    assert method.unsupported(tiny_roberta_classifier()) is None
    with pytest.raises(ConfigError, match="GPT2ForSequenceClassification"):
        method.build(model, LENGTH, head="frozen", head_names=head_parameter_names(model), seed=0)
