"""BitFit and its query + FFN-in subset: the biases they train, counted by closed forms from the
config (tiny BERT and RoBERTa, and the real paraphrase-MiniLM-L3-v2 against the notes' numbers)."""

import pytest
import torch

from intrinsic.errors import ConfigError
from intrinsic.methods import get_method, head_parameter_names, trainable_count

from .conftest import tiny_bert_classifier, tiny_gpt2, tiny_roberta_classifier


def built(name, model, head="frozen", heads=None):
    method = get_method(name)
    heads = head_parameter_names(model) if heads is None else heads
    return method, method.build(model, None, head=head, head_names=heads, seed=0), heads


def closed_forms(config, pooler: bool):
    """(bitfit, bitfit-subset) counts: per layer q, k, v, attention-output, FFN-out and two LayerNorm
    biases (7d) and the FFN-in bias (d_ff); the embeddings' LayerNorm bias; a pretrained pooler's bias."""
    d, d_ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return layers * (7 * d + d_ff) + d + (d if pooler else 0), layers * (d + d_ff)


@pytest.mark.parametrize("family, pooler", [("bert", True), ("roberta", False)])
@pytest.mark.parametrize("head", ["frozen", "train"])
def test_counts_follow_the_closed_forms_on_tiny_models(family, pooler, head):
    make = {"bert": tiny_bert_classifier, "roberta": tiny_roberta_classifier}[family]
    full, subset = closed_forms(make().config, pooler)
    for name, expected in [("bitfit", full), ("bitfit-subset", subset)]:
        method, model, heads = built(name, make(), head)
        head_size = sum(p.numel() for n, p in model.named_parameters() if n in heads) if head == "train" else 0
        counts = method.counts(model, None, head=head, head_names=heads)
        assert (counts.trainable, counts.stored, counts.head) == (expected + head_size,) * 2 + (head_size,)
        assert trainable_count(model) == counts.trainable
        trained = {n for n, p in model.named_parameters() if p.requires_grad and n not in heads}
        assert all(n.endswith(".bias") for n in trained)


def test_the_subset_is_the_query_and_ffn_in_biases():
    _, model, _ = built("bitfit-subset", tiny_bert_classifier())
    trained = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trained == sorted(f"bert.encoder.layer.{i}.{m}.bias" for i in range(2)
                             for m in ("attention.self.query", "intermediate.dense"))


def test_real_minilm_counts_reconcile_with_the_notes(shared):
    from transformers import AutoModelForSequenceClassification

    folder = shared / "models" / "paraphrase-MiniLM-L3-v2"
    model, info = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, output_loading_info=True)
    heads = head_parameter_names(model, info["missing_keys"])
    assert set(heads) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                          "classifier.bias"}
    every_bias = sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias"))
    assert every_bias == 13_442  # the notes' figure: all biases, the head's pooler (384) and classifier (2) too
    assert closed_forms(model.config, pooler=False) == (13_056, 5_760)
    method, model, heads = built("bitfit", model, heads=heads)
    assert method.counts(model, None, head="frozen", head_names=heads).trainable == 13_056 == trainable_count(model)
    method, model, heads = built("bitfit-subset", model, heads=heads)
    assert method.counts(model, None, head="frozen", head_names=heads).trainable == 5_760 == trainable_count(model)


def test_one_step_moves_only_biases():
    method, model, heads = built("bitfit", tiny_bert_classifier())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(5, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    model.train()
    model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(method.biases(model, heads))


def test_gpt2_supports_bitfit_but_not_the_subset():
    model = tiny_gpt2()
    assert get_method("bitfit").unsupported(model) is None
    reason = get_method("bitfit-subset").unsupported(model)
    assert "GPT2LMHeadModel" in reason and "query" in reason
    with pytest.raises(ConfigError, match="bitfit-subset"):
        built("bitfit-subset", model)
