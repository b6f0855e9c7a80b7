"""The experiments stage on Ray (``compute.engine: ray``) on the session's local cluster: the
same run keys and test metrics as the local engine, inputs through the object store only, a
killed worker retried, a killed driver resumed -- no lost and no duplicated MLflow runs."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from deepfn import tracking
from deepfn.au.experiments import run_experiments
from deepfn.au.ray_jobs import RayStrategy, batches, put_subjects, subjects_of, train_task
from deepfn.au.runs import search_runs
from deepfn.au.strategies import make_strategy
from deepfn.au.trainer import ClassifierTrainConfig, TrainJob, train_job
from deepfn.config.load import settings_from_dict
from deepfn.config.settings import Settings
from deepfn.tracking import names
from tests.au.conftest import Interrupted, logging_killed_after

GROUPS = ["person", "gender"]
N_RUNS = 20  # 16 models (tests/au/test_experiments.py)
TASK_TITLE = b"ray::train_task"  # a Ray worker's process title while it runs our task


def _settings(engine: str, **experiments: object) -> Settings:
    base = {"groups": GROUPS, "repetitions": 1, "epochs": 1, "batch_size": 16, "n_train": 2,
            "n_val": 1, "strategy": "sequential", "precision": "fp32",
            "normalizations": ("original", "deepfn")}
    return settings_from_dict({"profile": "smoke", "compute": {"engine": engine,
                                                               "device": "cpu"},
                               "experiments": {**base, **experiments}})


def _runs(uri: str) -> dict[str, dict[str, float]]:
    """run_key -> metrics (wall time aside) of every FINISHED model run (fails on a duplicated
    key)."""
    runs = [r for r in search_runs(tracking.Store(uri), tracking.EXPERIMENT_AU,
                                   "tags.kind = 'model'") if r.info.status == "FINISHED"]
    keys = Counter(r.data.tags["run_key"] for r in runs)
    assert [k for k, n in keys.items() if n > 1] == []  # no duplicated run
    return {r.data.tags["run_key"]: {k: v for k, v in r.data.metrics.items()
                                     if k != names.METRIC_TRAIN_SECONDS} for r in runs}


def _run(settings: Settings, corpora: dict[str, Path], tmp: Path, uri: str) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        return run_experiments(settings, corpora["original"], corpora["normalized"],
                               corpora["template"], tmp / "experiments.json", progress=False)


@pytest.fixture(scope="module")
def local(corpora, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """The reference: the local engine, one job after another (one thread, as a Ray task)."""
    tmp = tmp_path_factory.mktemp("local")
    uri = f"sqlite:///{tmp}/mlflow.db"
    _run(_settings("local"), corpora, tmp, uri)
    return _runs(uri)


def _same_metrics(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert b[name] == pytest.approx(a[name], abs=1e-5, nan_ok=True), name


def test_ray_engine_gives_the_local_run_keys_and_metrics(ray_cluster, corpora, local,
                                                         tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    m = _run(_settings("ray"), corpora, tmp_path, uri)
    assert m["counts"]["runs_logged"] == N_RUNS
    got = _runs(uri)
    assert got.keys() == local.keys() and len(got) == N_RUNS
    for key in got:
        _same_metrics(local[key], got[key])
    assert any(v > 0 for r in got.values() for k, v in r.items() if k.startswith("test/"))
    again = _run(_settings("ray"), corpora, tmp_path, uri)  # resumes: nothing left to train
    assert again["counts"]["models_trained"] == 0 and again["runs"] == m["runs"]


def test_ensembles_as_ray_tasks_match_the_one_model_trainer(ray_cluster, corpora, local,
                                                            tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _run(_settings("ray", strategy="ensemble"), corpora, tmp_path, uri)
    got = _runs(uri)
    assert got.keys() == local.keys()
    for key in got:  # the ensemble's float reduction order differs from one model's
        for name, v in local[key].items():
            if name.startswith("test/") and name.endswith("f1"):
                assert got[key][name] == pytest.approx(v, abs=0.02, nan_ok=True), name


def test_the_engine_picks_batches_on_cpus_and_ensembles_on_gpus(ray_cluster) -> None:
    cpu = make_strategy("sequential", 0, 16, device="cpu", cluster=ray_cluster)
    assert isinstance(cpu, RayStrategy) and not cpu.ensemble
    assert cpu.options == {"max_retries": 3, "retry_exceptions": False, "num_cpus": 1}
    jobs = [_job(str(i), "c", seed=i) for i in range(11)]
    split = cpu.tasks(jobs)  # 2 CPUs x 2 tasks each, jobs dealt round-robin
    assert [len(b) for b in split] == [3, 3, 3, 2]
    assert sorted(j.key for b in split for j in b) == sorted(j.key for j in jobs)
    assert batches(jobs[:3], 8) == [[jobs[0]], [jobs[1]], [jobs[2]]]
    ens = make_strategy("ensemble", 0, 16, device="cpu", cluster=ray_cluster)
    assert isinstance(ens, RayStrategy) and ens.ensemble
    assert [len(g) for g in ens.tasks(jobs)] == [6, 5]  # one ensemble per CPU


def _job(key: str, corpus: str, seed: int = 0) -> TrainJob:
    return TrainJob(key, corpus, ("F001", "F002"), ("F003",), (("person", ("M001",)),),
                    (1, 2, 4, 6, 12), seed, ClassifierTrainConfig(epochs=1, batch_size=16,
                                                                   precision="fp32"))


def test_workers_read_subjects_from_the_object_store_only(ray_cluster, corpora,
                                                          tmp_path) -> None:
    import ray

    corpus = tmp_path / "clf"
    shutil.copytree(corpora["original"], corpus)
    jobs = [_job("a", str(corpus), 1), _job("b", str(corpus), 2)]
    puts: list[object] = []

    def put(arrays: object) -> object:
        puts.append(arrays)
        return ray.put(arrays)

    refs = put_subjects(jobs, put)
    assert len(puts) == len(refs) == len(subjects_of(jobs[0])) == 4  # once each, not per job
    expected = [train_job(j) for j in jobs]
    shutil.rmtree(corpus)  # the task can only get its frames from the object store
    results = ray.get(ray.remote(train_task).remote(jobs, refs, False))
    assert [r.key for r in results] == ["a", "b"]
    for want, got in zip(expected, results, strict=True):
        assert got.val_f1 == pytest.approx(want.val_f1, abs=1e-6, nan_ok=True)
        assert got.tests == want.tests


def _task_pids() -> list[int]:
    """Ray worker processes now running a train_task."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(TASK_TITLE):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def test_a_killed_worker_is_retried_without_lost_or_duplicated_runs(ray_cluster, corpora,
                                                                     local, tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    killed: list[int] = []
    stop = threading.Event()

    def kill_first_task() -> None:
        while not stop.is_set() and not killed:
            for pid in _task_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_task)
    killer.start()
    try:
        # longer jobs (and so other keys): the kill lands while a task trains
        m = _run(_settings("ray", epochs=8), corpora, tmp_path, uri)
    finally:
        stop.set()
        killer.join()
    assert killed, "no train_task process was seen to kill"
    got = _runs(uri)
    assert len(got) == N_RUNS and m["counts"]["runs_logged"] == N_RUNS
    assert {r["run_key"] for r in m["runs"]} == got.keys()


def test_a_killed_driver_resumes_where_it_stopped(ray_cluster, corpora, local,
                                                  tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with logging_killed_after(7), pytest.raises(Interrupted):
        _run(_settings("ray"), corpora, tmp_path, uri)
    assert len(_runs(uri)) == 7  # what came back before the kill is kept
    m = _run(_settings("ray"), corpora, tmp_path, uri)
    assert m["counts"]["runs_logged"] == N_RUNS - 7 and m["counts"]["runs_skipped"] == 7
    assert _runs(uri).keys() == local.keys()
