"""scripts/pretrain_mlm.py on a slice of the real corpus: HF folders, exact resume, the family's sizes."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_mlm.py"


@pytest.fixture(scope="module")
def pretrain():
    spec = importlib.util.spec_from_file_location("pretrain_mlm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(pretrain, out, shared, *extra):
    args = ["--out", str(out), "--corpus-dir", str(shared / "data" / "corpus"), "--max-corpus-chars", "200000",
            "--vocab-size", "600", "--steps", "4", "--batch-size", "4", "--seq-len", "32", "--sizes", "xs",
            "--valid-windows", "4", "--no-progress", *extra]
    assert pretrain.main(args) == 0


def test_checkpoints_are_standard_hugging_face_folders(pretrain, shared, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    run(pretrain, tmp_path, shared, "--save-steps", "0,2,4")
    for step in (0, 2, 4):
        folder = tmp_path / "xs" / f"step-{step}"
        info = json.loads((folder / "pretraining.json").read_text())
        assert info["step"] == step and info["tokens_seen"] == step * 4 * 32
        assert info["non_embedding_params"] == pretrain.SIZES["xs"].non_embedding_params()
        assert AutoModelForMaskedLM.from_pretrained(folder).config.num_hidden_layers == 1
    folder = tmp_path / "xs" / "step-4"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    pair = tokenizer("a cat", "a dog")["input_ids"]  # RoBERTa's <s> A </s></s> B </s>
    assert pair[0] == tokenizer.bos_token_id and pair[-1] == tokenizer.eos_token_id
    assert pair.count(tokenizer.eos_token_id) == 3
    classifier = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    logits = classifier(**tokenizer(["a cat"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    first, last = (json.loads((tmp_path / "xs" / f"step-{s}" / "pretraining.json").read_text()) for s in (0, 4))
    assert last["valid_mlm_loss"] < first["valid_mlm_loss"]  # it learns something in 4 steps at lr 1e-3


def test_a_killed_run_resumes_to_the_same_weights(pretrain, shared, tmp_path):
    from safetensors.torch import load_file

    run(pretrain, tmp_path / "straight", shared, "--save-steps", "0,2,4")
    run(pretrain, tmp_path / "killed", shared, "--save-steps", "0,2")  # last saved state: step 2
    run(pretrain, tmp_path / "killed", shared, "--save-steps", "0,2,4")  # resumes at 2
    a = load_file(tmp_path / "straight" / "xs" / "step-4" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "xs" / "step-4" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_default_family_spans_ten_times_in_non_embedding_parameters(pretrain):
    from transformers import RobertaConfig, RobertaModel

    counts = {}
    for name, size in pretrain.SIZES.items():
        config = RobertaConfig(vocab_size=50, hidden_size=size.hidden, num_hidden_layers=size.layers,
                               num_attention_heads=size.heads, intermediate_size=4 * size.hidden)
        counts[name] = sum(p.numel() for p in RobertaModel(config, add_pooling_layer=False).encoder.parameters())
        assert counts[name] == size.non_embedding_params()
    assert counts["m"] / counts["xs"] >= 10


def test_bad_save_steps_and_missing_corpus_fail_clearly(pretrain, tmp_path):
    with pytest.raises(SystemExit):
        pretrain.main(["--save-steps", "a,b", "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="--corpus-dir"):
        pretrain.main(["--corpus-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_a_folder_of_another_recipe_is_refused_not_mixed(pretrain, shared, tmp_path):
    run(pretrain, tmp_path, shared, "--save-steps", "0,2")
    before = (tmp_path / "xs" / "step-2" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match=r"another recipe \(lr differ.*pass a new --out"):
        run(pretrain, tmp_path, shared, "--save-steps", "0,2,4", "--lr", "5e-4")
    assert (tmp_path / "xs" / "step-2" / "model.safetensors").read_bytes() == before
    assert not (tmp_path / "xs" / "step-4").exists()


def test_family_json_lists_sizes_trained_by_separate_commands(pretrain, shared, tmp_path):
    run(pretrain, tmp_path, shared, "--save-steps", "0")
    run(pretrain, tmp_path, shared, "--save-steps", "0", "--sizes", "s")
    family = json.loads((tmp_path / "family.json").read_text())
    assert sorted(family["sizes"]) == ["s", "xs"]


def test_a_run_killed_between_checkpoints_resumes_from_its_last_periodic_state(pretrain, shared, tmp_path):
    from safetensors.torch import load_file

    run(pretrain, tmp_path / "straight", shared, "--save-steps", "0,4")
    calls = []

    def dies_in_step_3(*args):  # call 1: step 0's valid loss (one chunk); calls 2-4: steps 0-2; call 5: step 3
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as under kill -9: nothing after this point runs
        return pretrain.MLM.batch_loss(*args)

    killing = dataclasses.replace(pretrain.MLM, batch_loss=dies_in_step_3)
    args = ["--out", str(tmp_path / "killed"), "--corpus-dir", str(shared / "data" / "corpus"), "--max-corpus-chars",
            "200000", "--vocab-size", "600", "--steps", "4", "--batch-size", "4", "--seq-len", "32", "--sizes", "xs",
            "--valid-windows", "4", "--no-progress", "--save-steps", "0,4", "--resume-every", "1"]
    with pytest.raises(KeyboardInterrupt):
        pretrain.main(args, family=killing)
    state = torch.load(tmp_path / "killed" / "xs" / "resume.pt", weights_only=False)
    assert state["step"] == 3  # saved at the start of step 3, between the checkpoints 0 and 4
    assert pretrain.main(args) == 0  # resumes at step 3
    a = load_file(tmp_path / "straight" / "xs" / "step-4" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "xs" / "step-4" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
