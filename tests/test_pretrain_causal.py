"""scripts/pretrain_causal.py on a slice of the real corpus: HF folders, Pythia's tokenizer convention, exact
resume, the family's sizes."""

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The machinery both families share (exact resume, refusing another recipe's folder, clear errors, family.json)
# is tested by these tests of pretrain_mlm.py; imported here, pytest runs them again on the causal family, with
# this module's `pretrain` fixture.
from tests.test_pretrain_mlm import (  # noqa: F401
    run,
    test_a_folder_of_another_recipe_is_refused_not_mixed,
    test_a_killed_run_resumes_to_the_same_weights,
    test_bad_save_steps_and_missing_corpus_fail_clearly,
    test_family_json_lists_sizes_trained_by_separate_commands,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def pretrain():
    sys.path.insert(0, str(SCRIPTS))  # as the script does itself, to import pretrain_mlm beside it
    return importlib.import_module("pretrain_causal")


def test_checkpoints_are_standard_hugging_face_folders(pretrain, shared, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from intrinsic.tokenization import prepare_for_classification

    run(pretrain, tmp_path, shared, "--save-steps", "0,2,4")
    infos = {s: json.loads((tmp_path / "xs" / f"step-{s}" / "pretraining.json").read_text()) for s in (0, 2, 4)}
    assert [(info["step"], info["tokens_seen"]) for info in infos.values()] == [(s, s * 4 * 32) for s in (0, 2, 4)]
    assert {info["non_embedding_params"] for info in infos.values()} == {pretrain.SIZES["xs"].non_embedding_params()}
    assert "mask_prob" not in infos[4]["recipe"]
    assert infos[4]["valid_clm_loss"] < infos[0]["valid_clm_loss"]  # it learns something in 4 steps at lr 1e-3
    family = json.loads((tmp_path / "family.json").read_text())
    assert family["sizes"]["xs"]["non_embedding_params"] == infos[4]["non_embedding_params"]

    folder = tmp_path / "xs" / "step-4"
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "GPTNeoXForCausalLM" and model.config.num_hidden_layers == 1
    assert model.config.use_parallel_residual and model.config.pad_token_id is None
    assert infos[4]["params"] == sum(p.numel() for p in model.parameters())

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token is None and tokenizer.all_special_tokens == ["<|endoftext|>"]
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.unk_token == "<|endoftext|>"
    cat, dog = (tokenizer(text)["input_ids"] for text in ("a cat", "a dog"))
    assert cat == tokenizer.convert_tokens_to_ids(tokenizer.tokenize("a cat"))  # nothing added to a text
    assert tokenizer("a cat", "a dog")["input_ids"] == cat + dog  # nor to a pair
    assert np.load(tmp_path / "tokens.npy")[-1] == tokenizer.eos_token_id  # after each paragraph

    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    assert type(classifier).__name__ == "GPTNeoXForSequenceClassification"
    alone = classifier(**tokenizer(["a cat"], return_tensors="pt")).logits
    assert alone.shape == (1, 2)
    prepare_for_classification(tokenizer)  # as measure-did does: pad with <|endoftext|>, on the right
    classifier.config.pad_token_id = tokenizer.pad_token_id
    batch = tokenizer(["a cat", "a cat sat on the mat"], padding=True, return_tensors="pt")
    assert torch.allclose(classifier(**batch).logits[0], alone[0], atol=1e-5)  # padding changes nothing


class TinyTokenizer:
    """What build_model reads of a tokenizer."""

    bos_token_id = eos_token_id = 0

    def __len__(self):
        return 50


def test_the_non_embedding_closed_form_counts_every_parameter_but_the_two_vocabulary_matrices(pretrain):
    counts = {}
    for name, size in pretrain.SIZES.items():
        model = pretrain.build_model(size, TinyTokenizer(), pretrain.Recipe())
        body = model.gpt_neox
        counts[name] = sum(p.numel() for p in [*body.layers.parameters(), *body.final_layer_norm.parameters()])
        assert counts[name] == size.non_embedding_params()
        vocabulary = body.embed_in.weight.numel() + model.get_output_embeddings().weight.numel()
        assert vocabulary == 2 * 50 * size.hidden  # untied
        assert sum(p.numel() for p in model.parameters()) == counts[name] + vocabulary
    assert counts["m"] / counts["xs"] >= 10
