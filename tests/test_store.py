import json

import pytest

from intrinsic.store import ResultStore, config_key


def test_key_ignores_key_order_and_tracks_every_value():
    assert config_key({"a": 1, "b": [2, 3]}) == config_key({"b": [2, 3], "a": 1})
    assert config_key({"a": 1, "b": [2, 3]}) != config_key({"a": 1, "b": [2, 4]})


def test_finished_runs_survive_a_new_process(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = ResultStore(path)
    store.put({"model": "m", "d": 100}, {"status": "ok", "metrics": {"accuracy": 0.8}})
    again = ResultStore(path)
    assert len(again) == 1 and {"model": "m", "d": 100} in again
    assert again.get({"model": "m", "d": 100})["metrics"]["accuracy"] == 0.8
    record = json.loads(path.read_text().splitlines()[0])
    assert record["config"] == {"model": "m", "d": 100} and "torch" in record["versions"]


def test_a_record_cut_short_by_a_kill_is_ignored_and_the_next_stays_whole(tmp_path):
    path = tmp_path / "runs.jsonl"
    store = ResultStore(path)
    store.put({"d": 1}, {"status": "ok"})
    with open(path, "a") as f:
        f.write('{"key": "abc", "config": {"d": 2}, "res')  # what kill -9 mid-write leaves
    store = ResultStore(path)
    assert len(store) == 1 and store.get({"d": 2}) is None
    store.put({"d": 3}, {"status": "ok"})
    with pytest.warns(RuntimeWarning, match="runs.jsonl:2: unreadable record skipped"):
        assert len(ResultStore(path)) == 2


def test_path_under_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write the results store"):
        ResultStore(blocker / "runs.jsonl")


def test_two_processes_sharing_a_store_see_each_others_runs(tmp_path):
    path = tmp_path / "runs.jsonl"
    first, second = ResultStore(path), ResultStore(path)  # opened before either wrote
    config = {"model": "m", "d": 64}
    first.put(config, {"status": "ok", "metrics": {"accuracy": 0.7}})
    assert second.get(config) == {"status": "ok", "metrics": {"accuracy": 0.7}}
    assert config in second and len(second) == 1
    assert second.get({"model": "m", "d": 128}) is None
