"""Optuna workers as Ray tasks (``deepfn tune ... --engine ray``) on the session's local
cluster: one study, a journal file or PostgreSQL, every trial once in Optuna and in MLflow."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from deepfn.cli import app
from deepfn.config.load import load_settings
from deepfn.errors import DeepFNError
from deepfn.tuning import TuneData, tune
from deepfn.tuning.study import make_storage
from tests.tuning.test_study import _runs
from tests.tuning.worker import FastObjective

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _check_study(storage: str, name: str, n: int, uri: str, killed: tuple[int, ...] = ()
                 ) -> list[optuna.trial.FrozenTrial]:
    """n finished trials, each with one MLflow trial run under one study run; any other trial
    is a race-lost empty slot or one of ``killed``."""
    study = optuna.load_study(study_name=name, storage=make_storage(storage))
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == n  # none lost, none extra
    numbers = [t.number for t in study.get_trials()]
    assert len(set(numbers)) == len(numbers)
    assert all(t.user_attrs.get("surplus") or t.number in killed for t in study.get_trials()
               if t.state not in FINISHED)
    runs = _runs(uri, name)
    assert len(runs["study"]) == 1 and runs["study"][0].info.status == "FINISHED"
    trial_runs = sorted(int(r.data.tags["optuna_trial"]) for r in runs["trial"]
                        if r.data.tags.get("optuna_state") in ("COMPLETE", "PRUNED"))
    assert trial_runs == sorted(t.number for t in finished)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs["trial"]} == {
        runs["study"][0].info.run_id}
    return finished


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_ray_workers_share_one_study(ray_cluster, tmp_path, tiny, tuning_mlflow, backend,
                                         request) -> None:
    settings = load_settings(tiny["params"])
    storage = (request.getfixturevalue("postgres_url") if backend == "postgresql"
               else str(tmp_path / ".optuna" / "journal.log"))
    name, n = f"ray-{backend}", 6
    # each worker's first trial waits for the other's: both are inside a trial at once
    objective = FastObjective(settings, step_s=0.05, rendezvous=tmp_path / "met", parties=2)
    summary = tune(settings, target="classifier", data=TuneData(tiny["clf"], tiny["template"]),
                   study_name=name, n_trials=n, storage=storage, out_dir=tmp_path / "reports",
                   objective=objective, echo=lambda s: None, engine="ray", workers=2)
    assert summary["status"] == "FINISHED"
    assert summary["this_worker"]["complete"] + summary["this_worker"]["pruned"] == n
    finished = _check_study(storage, name, n, tuning_mlflow)
    pids = {t.user_attrs["worker"].split(":")[1] for t in finished}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two Ray workers, both worked
    assert (tmp_path / "reports" / f"{name}_best.yaml").is_file()  # the driver reported


def test_a_killed_ray_worker_is_retried_and_its_trial_requeued(ray_cluster, tmp_path, tiny,
                                                               tuning_mlflow) -> None:
    settings = load_settings(tiny["params"])
    journal, name, n = str(tmp_path / "journal.log"), "ray-kill", 3
    killed: list[int] = []
    stop = threading.Event()

    def kill_mid_trial() -> None:  # SIGKILL the worker that runs the first RUNNING trial
        while not stop.is_set() and not killed:
            try:
                study = optuna.load_study(study_name=name, storage=make_storage(journal))
                running = study.get_trials(states=(TrialState.RUNNING,))
            except (KeyError, ValueError):  # not created yet
                running = []
            for t in running:
                if "worker" in t.user_attrs and t.intermediate_values:  # mid-trial
                    pid = int(t.user_attrs["worker"].split(":")[1])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(t.number)
                    break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_trial)
    killer.start()
    try:
        summary = tune(settings, target="classifier",
                       data=TuneData(tiny["clf"], tiny["template"]), study_name=name,
                       n_trials=n, storage=journal, out_dir=tmp_path / "reports",
                       objective=FastObjective(settings, step_s=0.5), echo=lambda s: None,
                       engine="ray", workers=1)
    finally:
        stop.set()
        killer.join()
    assert killed, "no running trial was seen to kill"
    assert summary["status"] == "FINISHED" and summary["this_worker"]["reclaimed"] == 1
    _check_study(journal, name, n, tuning_mlflow, killed=tuple(killed))
    study = optuna.load_study(study_name=name, storage=make_storage(journal))
    dead = study.trials[killed[0]]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["fail_reason"]
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number]
    assert retry.params == dead.params and retry.state in FINISHED
    killed_run = [r for r in _runs(tuning_mlflow, name)["trial"]
                  if r.data.tags["optuna_trial"] == str(dead.number)]
    assert [r.info.status for r in killed_run] == ["KILLED"]


def test_deepfn_tune_engine_ray_runs_the_real_objective(ray_cluster, tmp_path, tiny,
                                                        tuning_mlflow) -> None:
    journal = tmp_path / "journal.log"
    result = CliRunner().invoke(app, [
        "tune", "classifier", "--engine", "ray", "--workers", "2", "--study", "cli",
        "--n-trials", "3", "--storage", str(journal), "--params", str(tiny["params"]),
        "--original", str(tiny["clf"]), "--normalized", str(tiny["normalized"]),
        "--template", str(tiny["template"]), "--out", str(tmp_path / "reports"),
        "--splits", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "reports" / "cli_summary.json").read_text())
    worked = summary["this_worker"]
    assert worked["complete"] + worked["pruned"] == 3 and summary["status"] == "FINISHED"
    finished = _check_study(str(journal), "cli", 3, tuning_mlflow)
    assert all(0.0 <= t.value <= 1.0 for t in finished if t.state == TrialState.COMPLETE)


def test_an_unknown_engine_is_one_line(tmp_path, tiny) -> None:
    settings = load_settings(tiny["params"])
    with pytest.raises(DeepFNError, match=r"^--engine 'dask': allowed: local, ray$"):
        tune(settings, target="classifier", data=TuneData(tiny["clf"], tiny["template"]),
             storage=str(tmp_path / "j.log"), engine="dask", echo=lambda s: None)


def test_worker_paths_are_absolute(tmp_path, monkeypatch) -> None:
    from deepfn.tuning.stage import _absolute_sqlite

    monkeypatch.chdir(tmp_path)
    assert _absolute_sqlite("sqlite:///mlruns/mlflow.db") == \
        f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert _absolute_sqlite("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert _absolute_sqlite("http://127.0.0.1:5001") == "http://127.0.0.1:5001"
