"""The GLUE registry and loaders, on the shared GLUE folder and on files written here."""

import json

import pytest

from intrinsic.errors import ConfigError
from intrinsic.tasks import TASKS, chance_scores, custom_task, get_task, load_task

GLUE_NAMES = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"]


def test_registry_covers_glue_with_the_papers_d90_metrics():
    assert sorted(TASKS) == sorted(GLUE_NAMES)
    assert get_task("mrpc").d90_metric == "accuracy"  # as in the paper; F1 is nearly trivial
    assert get_task("cola").d90_metric == "matthews_correlation"
    assert set(get_task("stsb").metrics) == {"pearson", "spearman"} and get_task("stsb").is_regression
    assert get_task("SST-2") is get_task("sst2")
    assert get_task("mnli").num_labels == 3


def test_unknown_task_names_the_choices():
    with pytest.raises(ValueError, match="unknown task 'mrcp'.*mrpc"):
        get_task("mrcp")


def test_string_labels_map_to_ids():
    rte = get_task("rte")
    assert rte.label_id("entailment") == 0 and rte.label_id("not_entailment") == 1
    assert get_task("mnli").label_id("contradiction") == 2
    assert get_task("mrpc").label_id("1") == 1
    with pytest.raises(ValueError, match="not one of task 'rte'"):
        rte.label_id("neutral")


def write_rte(folder, rows):
    (folder / "RTE").mkdir(parents=True)
    for split in ("train", "dev"):
        lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\t{a}\t{b}\t{y}" for i, (a, b, y) in enumerate(rows)]
        (folder / "RTE" / f"{split}.tsv").write_text("\n".join(lines) + "\n")


def test_glue_folder_with_string_labels(tmp_path):
    write_rte(tmp_path, [("A man sleeps.", "A person rests.", "entailment"),
                         ("It rains \"hard.", "It is dry.", "not_entailment"),
                         ("Cats purr.", "Cats make sounds.", "entailment")])
    train, dev = load_task("rte", data_dir=tmp_path)
    assert train.labels == [0, 1, 0] and len(dev) == 3
    assert train.texts[1] == ('It rains "hard.', "It is dry.")  # unbalanced quote kept verbatim
    assert chance_scores(get_task("rte"), train, dev) == {"accuracy": pytest.approx(2 / 3)}


def test_malformed_tsv_names_the_line(tmp_path):
    write_rte(tmp_path, [("only one field", "x", "entailment")])
    path = tmp_path / "RTE" / "train.tsv"
    path.write_text(path.read_text() + "7\tmissing the rest\n")
    with pytest.raises(ValueError, match=r"train.tsv:3: expected at least 4 tab-separated fields"):
        load_task("rte", data_dir=tmp_path)


def test_missing_data_folder_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="data_dir must hold GLUE's task folders"):
        load_task("mrpc", data_dir=tmp_path)


def test_shared_mrpc_matches_its_documented_counts(shared):
    train, dev = load_task("mrpc", data_dir=shared / "data" / "glue")
    assert (len(train), len(dev)) == (3668, 408)
    assert sum(dev.labels) == 279
    scores = chance_scores(get_task("mrpc"), train, dev)
    assert scores["accuracy"] == pytest.approx(0.684, abs=5e-4)
    assert scores["f1"] == pytest.approx(0.81, abs=0.005)


@pytest.mark.parametrize("name,sizes", [("sst2", (67349, 872)), ("cola", (8551, 1043)), ("stsb", (5749, 1500)),
                                        ("wnli", (635, 71))])
def test_shared_glue_tasks_load(shared, name, sizes):
    train, dev = load_task(name, data_dir=shared / "data" / "glue")
    assert (len(train), len(dev)) == sizes
    task = get_task(name)
    if task.is_regression:
        assert all(0.0 <= y <= 5.0 for y in dev.labels)
    else:
        assert set(train.labels) <= set(range(task.num_labels))
    assert all(len(t) == len(task.text_columns) for t in train.texts[:100])


def test_max_train_samples(shared):
    train, _ = load_task("sst2", data_dir=shared / "data" / "glue", max_train_samples=100)
    assert len(train) == 100


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_custom_task_in_each_format(tmp_path, fmt):
    rows = [{"text": "great film", "y": "pos"}, {"text": "dull, slow", "y": "neg"}, {"text": "fine", "y": "pos"}]
    for split in ("train", "dev"):
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            sep = "," if fmt == "csv" else "\t"
            quote = '"' if fmt == "csv" else ""
            path.write_text(f"text{sep}y\n" + "".join(f'{quote}{r["text"]}{quote}{sep}{r["y"]}\n' for r in rows))
    task = custom_task(tmp_path / f"train.{fmt}", tmp_path / f"dev.{fmt}", ["text"], "y")
    assert task.label_names == ("neg", "pos")
    train, dev = load_task(task)
    assert train.labels == [1, 0, 1] and train.texts[1] == ("dull, slow",)


def test_custom_task_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        custom_task(tmp_path / "a.csv", tmp_path / "b.csv", ["text"], "label")
    (tmp_path / "a.csv").write_text("sentence,label\nhi,1\n")
    with pytest.raises(ValueError, match=r"lacks columns \['text'\]"):
        custom_task(tmp_path / "a.csv", tmp_path / "a.csv", ["text"], "label")


def test_held_out_validation_is_disjoint_from_training_and_the_same_every_time():
    from intrinsic.tasks import Split, hold_out

    train = Split([(f"s{i}",) for i in range(50)], [i % 2 for i in range(50)])
    rest, validation = hold_out(train, 10, seed=0)
    assert len(validation) == 10 and len(rest) == 40
    assert not set(rest.texts) & set(validation.texts)
    assert set(rest.texts) | set(validation.texts) == set(train.texts)
    assert rest.texts == [t for t in train.texts if t in set(rest.texts)]  # the rest keeps file order
    assert [train.labels[train.texts.index(t)] for t in validation.texts] == validation.labels
    assert hold_out(train, 10, seed=0)[1].texts == validation.texts
    assert hold_out(train, 10, seed=1)[1].texts != validation.texts
    with pytest.raises(ConfigError, match="validation_size must be between 1 and 49"):
        hold_out(train, 50)


def test_a_measurement_trains_on_the_rest_and_holds_the_same_validation_for_any_subset(tmp_path):
    from intrinsic.measure import MeasureConfig
    from intrinsic.runner import load_splits

    (tmp_path / "SST-2").mkdir()
    rows = [f"sentence {i}\t{i % 2}" for i in range(100)]
    for split in ("train", "dev"):
        (tmp_path / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    config = MeasureConfig(model="unused", task="sst2", data_dir=str(tmp_path), validation_size=30)
    train, dev, validation = load_splits(get_task("sst2"), config)
    assert len(validation) == 20 and len(train) == 80  # at most a fifth of the file
    assert not set(train.texts) & set(validation.texts) and len(dev) == 100
    small, _, same = load_splits(get_task("sst2"), MeasureConfig(**{**config.__dict__, "max_train_samples": 10}))
    assert same.texts == validation.texts and small.texts == train.texts[:10]
    plain, _, none = load_splits(get_task("sst2"), MeasureConfig(**{**config.__dict__, "selection": "dev"}))
    assert none is None and len(plain) == 100
