"""Executors: the serial and Ray executors give the same measurement; the driver is the store's only
writer; a lost worker, a killed driver, a bad address and a GPU request on a GPU-less cluster.

The Ray tests share one local cluster of 2 CPUs (``ray_cluster``), started once for the session.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest
import torch

from intrinsic.cli import main
from intrinsic.executors import SerialExecutor, WorkerMismatchError, drive
from intrinsic.executors.worker import execute_payload, payload
from intrinsic.measure import MeasureConfig, d90_plan, measure_d90
from intrinsic.runner import Runner, RunRequest
from intrinsic.store import ResultStore

from .conftest import save_tiny_bert_with_minilm_tokenizer

pytest.importorskip("ray")


POSITIVE, NEGATIVE, FILLER = ["good", "great", "fine"], ["bad", "dull", "awful"], ["a", "the", "film", "plot", "was"]


@pytest.fixture(scope="module")
def tiny(shared, tmp_path_factory):
    """A tiny random BERT folder with the shared MiniLM tokenizer."""
    return save_tiny_bert_with_minilm_tokenizer(tmp_path_factory.mktemp("tiny") / "bert", shared, hidden_size=8,
                                                max_position_embeddings=32)


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """SST-2 files of four-word sentences whose one sentiment word decides the label: full
    fine-tuning of the tiny BERT learns it in seconds."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("glue")
    (root / "SST-2").mkdir()
    for split, n in (("train", 120), ("dev", 60)):
        rows = []
        for _ in range(n):
            label = rng.randrange(2)
            words = [*rng.sample(FILLER, 3), rng.choice(POSITIVE if label else NEGATIVE)]
            rng.shuffle(words)
            rows.append(f"{' '.join(words)}\t{label}")
        (root / "SST-2" / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return root


def config_of(tiny, glue, **changes) -> MeasureConfig:
    """Both targets' searches over four rounds (d = 8 … 64), two seeds: every round has runs to spread."""
    base = MeasureConfig(model=str(tiny), task="sst2", data_dir=str(glue), validation_size=20, epochs=10,
                         batch_size=16, max_length=16, lrs=[1e-1], full_lr=[1e-2], seeds=[0, 1], start_d=8, max_d=64,
                         device="cpu")
    return replace(base, **changes)


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(num_cpus=2, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address


@pytest.fixture
def one_thread():
    """Serial runs on one thread, as each Ray task (--cpus-per-run 1) trains: the same arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def keys(path) -> Counter:
    return Counter(json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip())


def same_measurement(a, b) -> None:
    assert a.curve == b.curve
    assert (a.d90, a.d90_chance_corrected, a.full_metric, a.chance) == (b.d90, b.d90_chance_corrected,
                                                                         b.full_metric, b.chance)


def test_the_worker_refuses_other_weights_under_the_same_path(tiny, glue, tmp_path):
    runner = Runner(config_of(tiny, glue), ResultStore(tmp_path / "runs.jsonl"), progress=False)
    sent = payload(runner, RunRequest(True, None, 1e-3, 0))
    with pytest.raises(WorkerMismatchError, match="other weights under .* same path on every node"):
        execute_payload({**sent, "fingerprint": "not-the-driver's"})
    with pytest.raises(WorkerMismatchError, match="same intrinsic version"):
        execute_payload({**sent, "run_config": {**sent["run_config"], "task": "mrpc"}})


def test_the_serial_driver_runs_each_shared_run_once(tiny, glue, tmp_path):
    """Two plans needing the same runs (one measurement twice): each run is trained and stored once."""
    store = ResultStore(tmp_path / "runs.jsonl")
    runners = [Runner(config_of(tiny, glue, dims=[8]), store, progress=False) for _ in range(2)]
    first, second = drive([(r, d90_plan(r)) for r in runners], SerialExecutor(), progress=False)
    same_measurement(first, second)
    assert set(keys(tmp_path / "runs.jsonl").values()) == {1}


@pytest.mark.usefixtures("ray_cluster", "one_thread")
def test_ray_and_serial_give_the_same_curve_and_d90s_and_store_each_run_once(tiny, glue, tmp_path):
    serial = measure_d90(config_of(tiny, glue), results=tmp_path / "serial.jsonl", progress=False)
    spread = measure_d90(config_of(tiny, glue, executor="ray"), results=tmp_path / "ray.jsonl", progress=False)
    assert len(serial.curve) >= 3  # a search of several rounds
    same_measurement(serial, spread)
    serial_keys, ray_keys = keys(tmp_path / "serial.jsonl"), keys(tmp_path / "ray.jsonl")
    assert serial_keys == ray_keys and set(ray_keys.values()) == {1}
    worker = json.loads((tmp_path / "ray.jsonl").read_text().splitlines()[0])["worker"]
    assert worker["device"] == "cpu" and worker["versions"]["torch"] == torch.__version__
    # with every run stored, Ray trains nothing and reports the same
    again = measure_d90(config_of(tiny, glue, executor="ray"), results=tmp_path / "ray.jsonl", progress=False)
    same_measurement(again, serial)
    assert keys(tmp_path / "ray.jsonl") == ray_keys


@pytest.mark.usefixtures("ray_cluster", "one_thread")
def test_a_worker_killed_mid_run_is_retried_and_its_run_stored_once(tiny, glue, tmp_path):
    from intrinsic.executors.ray_cluster import RayExecutor

    config = config_of(tiny, glue, dims=[8])
    store = ResultStore(tmp_path / "runs.jsonl")
    marker = tmp_path / "exited"
    runner = Runner(config, store, progress=False)
    (result,) = drive([(runner, d90_plan(runner))], RayExecutor(exit_once=str(marker)), progress=False)
    assert marker.exists()  # a worker died mid-run
    assert result.failed_runs == 0
    same_measurement(result, measure_d90(config, results=tmp_path / "serial.jsonl", progress=False))
    assert keys(tmp_path / "runs.jsonl") == keys(tmp_path / "serial.jsonl")  # each run stored once


@pytest.mark.usefixtures("ray_cluster")
def test_a_run_whose_worker_dies_past_its_retries_is_reported_and_not_stored(tiny, glue, tmp_path):
    from intrinsic.executors.ray_cluster import RayExecutor

    path = tmp_path / "runs.jsonl"
    measure_d90(config_of(tiny, glue, dims=[8]), results=path, progress=False)  # full fine-tuning stored
    before = len(ResultStore(path))
    config = config_of(tiny, glue, dims=[16])
    runner = Runner(config, ResultStore(path), progress=False)
    (result,) = drive([(runner, d90_plan(runner))], RayExecutor(max_retries=0, exit_once=str(tmp_path / "x")),
                      progress=False)
    assert result.failed_runs == 1  # the first run sent out, a d = 16 run, died with its worker …
    assert any("1 run(s) were lost" in note and "rerun" in note for note in result.notes)
    stored = len(ResultStore(path))
    rerun = measure_d90(config, results=path, progress=False)  # … was not stored, and a rerun trains it
    assert rerun.failed_runs == 0 and len(ResultStore(path)) == stored + 1 and stored > before


def cli_args(tiny, glue, store, *extra) -> list[str]:
    return ["--model", str(tiny), "--task", "sst2", "--data-dir", str(glue), "--validation-size", "20",
            "--epochs", "10", "--batch-size", "16", "--max-length", "16", "--lr", "1e-1", "--full-lr", "1e-2",
            "--seeds", "0", "1", "--start-d", "8", "--max-d", "64", "--device", "cpu", "--results", str(store),
            "--no-progress", *extra]


def test_a_driver_killed_mid_sweep_resumes_without_repeating_a_run(tiny, glue, tmp_path, ray_cluster, one_thread):
    store = tmp_path / "runs.jsonl"
    command = [sys.executable, "-m", "intrinsic.cli",
               *cli_args(tiny, glue, store, "--executor", "ray", "--ray-address", ray_cluster)]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while (not store.exists() or len(keys(store)) < 3) and time.time() < deadline and driver.poll() is None:
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep finished before it could be killed"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    finished = keys(store)
    assert 3 <= len(finished)
    out = tmp_path / "resumed.json"
    rerun = subprocess.run([*command, "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    resumed = keys(store)
    assert set(resumed.values()) == {1} and set(finished) <= set(resumed)
    from intrinsic.results import D90Result

    whole = measure_d90(config_of(tiny, glue), results=tmp_path / "whole.jsonl", progress=False)
    same_measurement(D90Result.from_dict(json.loads(out.read_text())), whole)
    assert keys(tmp_path / "whole.jsonl") == resumed


def test_an_unreachable_address_is_one_line(tiny, glue, tmp_path, capsys):
    assert main(cli_args(tiny, glue, tmp_path / "r.jsonl", "--executor", "ray", "--ray-address", "127.0.0.1:9")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach the Ray cluster at 127.0.0.1:9" in err and "ray start --head" in err


@pytest.mark.usefixtures("ray_cluster")
def test_gpus_on_a_cluster_without_gpus_are_one_line(tiny, glue, tmp_path, capsys):
    assert main(cli_args(tiny, glue, tmp_path / "r.jsonl", "--executor", "ray", "--gpus-per-run", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--gpus-per-run asks for 1 GPUs per run, but the Ray cluster has 0" in err


def test_ray_settings_without_the_ray_executor_are_refused(tiny, glue):
    with pytest.raises(ValueError, match="executor must be 'ray'"):
        config_of(tiny, glue, gpus_per_run=1)


def test_a_worker_keeps_the_runners_of_its_latest_measurements_only(tiny, glue, tmp_path):
    from intrinsic.executors import worker

    worker._RUNNERS.clear()
    store = ResultStore(tmp_path / "runs.jsonl")
    runners = [Runner(config_of(tiny, glue, epochs=1, threshold=t), store, progress=False)
               for t in (0.5, 0.6, 0.7, 0.8, 0.9)]  # five measurements whose runs share a key
    request = RunRequest(False, 8, 1e-1, 0)
    results = [execute_payload(payload(r, request))["result"] for r in runners]
    assert len(worker._RUNNERS) == worker.KEEP_RUNNERS
    assert all(r["metrics"] == results[0]["metrics"] for r in results)  # the same run, whichever runner
    kept = list(worker._RUNNERS.values())
    execute_payload(payload(runners[1], request))  # the oldest kept: used again, not rebuilt
    assert list(worker._RUNNERS.values()) == [*kept[1:], kept[0]]
    worker._RUNNERS.clear()
