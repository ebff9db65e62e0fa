"""Decoders through measure-did: tiny GPT-NeoX and GPT-2 folders whose byte-level tokenizers have
no pad token (as Pythia's and GPT-2's), on SST-2 and MRPC subsets."""

import json

import pytest
import torch

from intrinsic.cli import main
from intrinsic.errors import ConfigError
from intrinsic.models import load_classifier, load_tokenizer
from intrinsic.store import ResultStore
from intrinsic.tokenization import PAIR_SEPARATOR, encode, has_pair_template, prepare_for_classification

END = "<|endoftext|>"


def byte_level_tokenizer(shared, family: str):
    """A byte-level BPE whose only special token is ``<|endoftext|>``, trained on task sentences."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast, GPTNeoXTokenizerFast

    lines = []
    for task in ("SST-2", "MRPC"):
        with open(shared / "data" / "glue" / task / "train.tsv", encoding="utf-8") as f:
            lines += [next(f) for _ in range(300)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=400, min_frequency=2, special_tokens=[END], show_progress=False)
    cls = GPTNeoXTokenizerFast if family == "gpt-neox" else GPT2TokenizerFast
    return cls(tokenizer_object=bpe, bos_token=END, eos_token=END, unk_token=END, pad_token=None)


def tiny_decoder(family: str, vocab_size: int, eos: int):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPTNeoXConfig, GPTNeoXForSequenceClassification

    torch.manual_seed(0)
    if family == "gpt-neox":
        config = GPTNeoXConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=128, rotary_pct=0.25,
                               bos_token_id=eos, eos_token_id=eos)
        return GPTNeoXForSequenceClassification(config)
    config = GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=128,
                        bos_token_id=eos, eos_token_id=eos)
    return GPT2ForSequenceClassification(config)


@pytest.fixture(scope="module", params=["gpt-neox", "gpt2"])
def decoder_dir(request, shared, tmp_path_factory):
    family = request.param
    folder = tmp_path_factory.mktemp(family)
    tokenizer = byte_level_tokenizer(shared, family)
    tokenizer.save_pretrained(folder)
    model = tiny_decoder(family, len(tokenizer), tokenizer.eos_token_id)
    assert model.config.pad_token_id is None
    model.save_pretrained(folder)
    return folder


def test_a_pad_less_tokenizer_gets_its_end_of_text_token_and_the_model_its_id(decoder_dir):
    tokenizer = load_tokenizer(str(decoder_dir))
    assert tokenizer.pad_token is None and not has_pair_template(tokenizer)
    setup = prepare_for_classification(tokenizer, pair_task=True)
    assert tokenizer.pad_token == END and tokenizer.padding_side == "right"
    assert setup.changes() == {"pad_token": END, "pair_separator": PAIR_SEPARATOR}
    assert END in setup.note("tiny") and "pairs joined" in setup.note("tiny")
    model = load_classifier(str(decoder_dir), 2, tokenizer.pad_token_id)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_a_score_does_not_depend_on_how_much_its_batch_was_padded(decoder_dir):
    tokenizer = load_tokenizer(str(decoder_dir))
    prepare_for_classification(tokenizer)
    model = load_classifier(str(decoder_dir), 2, tokenizer.pad_token_id).eval()
    short, long = "a gripping film", "a long , winding and ultimately pointless story about nothing at all " * 3
    alone = model(**tokenizer([short], return_tensors="pt")).logits
    batch = tokenizer([short, long], return_tensors="pt", padding=True)
    assert batch["input_ids"].shape[1] > len(tokenizer(short)["input_ids"]) + 10  # really padded
    together = model(**batch).logits
    torch.testing.assert_close(together[0], alone[0], rtol=0, atol=1e-5)
    # Pooling a pad instead (what a config without the tokenizer's pad id would do) changes the score.
    model.config.pad_token_id = len(tokenizer) - 1
    assert not torch.allclose(model(**batch).logits[0], alone[0], atol=1e-3)


def test_pairs_are_joined_by_the_stated_separator_only_without_a_pair_template(decoder_dir, shared):
    tokenizer = load_tokenizer(str(decoder_dir))
    pair = [("the cat sat", "on the mat")]
    assert encode(tokenizer, pair, 64)["input_ids"] == [tokenizer("the cat sat\non the mat")["input_ids"]]
    bert = load_tokenizer(str(shared / "models" / "paraphrase-MiniLM-L3-v2"))
    assert encode(bert, pair, 64)["input_ids"] == [bert("the cat sat", "on the mat")["input_ids"]]


def test_a_tokenizer_with_a_pad_token_is_left_unchanged(shared):
    tokenizer = load_tokenizer(str(shared / "models" / "paraphrase-MiniLM-L3-v2"))
    before = (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.padding_side)
    setup = prepare_for_classification(tokenizer, pair_task=True)
    assert setup.changes() == {} and setup.note("MiniLM") is None
    assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.padding_side) == before


def test_a_tokenizer_without_pad_or_end_of_text_token_is_a_config_error(decoder_dir):
    tokenizer = load_tokenizer(str(decoder_dir))
    tokenizer.eos_token = None
    with pytest.raises(ConfigError, match="neither a pad token nor an end-of-text token"):
        prepare_for_classification(tokenizer)


@pytest.mark.parametrize("task", ["sst2", "mrpc"])
def test_a_decoder_folder_runs_through_measure_did_as_an_encoder_does(decoder_dir, task, shared, tmp_path, capsys):
    store, out = tmp_path / "runs.jsonl", tmp_path / "summary.json"
    args = ["--model", str(decoder_dir), "--task", task, "--data-dir", str(shared / "data" / "glue"),
            "--max-train-samples", "64", "--validation-size", "64", "--epochs", "1", "--max-length", "48",
            "--lr", "1e-2", "--full-lr", "1e-3", "--dims", "8", "--seeds", "0", "--results", str(store),
            "--output", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads(out.read_text())
    assert [p["d"] for p in summary["curve"]] == [8] and summary["full_metric"] is not None
    records = [json.loads(line) for line in store.read_text().splitlines()]
    expected = {"pad_token": END, **({"pair_separator": PAIR_SEPARATOR} if task == "mrpc" else {})}
    assert len(records) == 2 and all(r["config"]["tokenizer"] == expected for r in records)
    assert all(r["result"]["status"] == "ok" for r in records)
    err = capsys.readouterr().err
    assert err.count("note: ") >= 1 and "pad token = end-of-text token" in err
    assert main(args) == 0 and len(ResultStore(store)) == 2  # rerun: the decoder's runs are found again
