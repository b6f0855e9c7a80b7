"""The study machinery for real: journal file + PostgreSQL storages, MLflow sqlite store,
pruning, resume after SIGKILL and two concurrent ``deepfn tune`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from deepfn.config.load import load_settings
from deepfn.tracking import EXPERIMENT_TUNING, Store
from deepfn.tuning import TuneData, tune
from deepfn.tuning.study import make_storage
from tests.tuning.worker import FastObjective

WORKER = Path(__file__).with_name("worker.py")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _data(tiny: dict[str, Path]) -> TuneData:
    return TuneData(original=tiny["clf"], template=tiny["template"])


def _runs(uri: str, study: str) -> dict[str, list]:
    c = Store(uri).client
    exp = c.get_experiment_by_name(EXPERIMENT_TUNING)
    runs = c.search_runs([exp.experiment_id], f"tags.optuna_study = '{study}'",
                         max_results=500)
    out: dict[str, list] = {"study": [], "trial": []}
    for r in runs:
        out[r.data.tags["deepfn_role"]].append(r)
    return out


def _worker(tmp_path: Path, tiny: dict[str, Path], study: str, n: int, journal: Path,
            *extra: str, **env: str) -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), "tune", "classifier", "--study", study, "--n-trials",
           str(n), "--storage", str(journal), "--params", str(tiny["params"]), "--original",
           str(tiny["clf"]), "--template", str(tiny["template"]), "--out",
           str(tmp_path / "reports"), *extra]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", **env}
    return subprocess.Popen(cmd, cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 90) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_trials_are_mlflow_runs_nested_under_the_study_run(tmp_path, tiny, tuning_mlflow):
    settings = load_settings(tiny["params"])
    journal = tmp_path / ".optuna" / "journal.log"
    summary = tune(settings, target="classifier", data=_data(tiny), study_name="nest",
                   n_trials=3, storage=str(journal), out_dir=tmp_path / "reports",
                   objective=FastObjective(settings), echo=lambda s: None)
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 3
    runs = _runs(tuning_mlflow, "nest")
    (study_run,) = runs["study"]
    assert study_run.info.status == "FINISHED"
    assert study_run.data.tags["stage"] == "tune" and study_run.data.tags["profile"] == "smoke"
    assert {"git_commit", "data_version"} <= set(study_run.data.tags)
    assert study_run.data.metrics["best_value"] == pytest.approx(summary["best"]["value"])
    assert len(runs["trial"]) == 3
    for r in runs["trial"]:
        assert r.data.tags["mlflow.parentRunId"] == study_run.info.run_id
        assert r.data.tags["stage"] == "tune" and r.info.status == "FINISHED"
        assert {"lr", "beta1", "batch_size", "epochs", "weight_decay"} <= set(r.data.params)
        assert r.data.tags["optuna_state"] in ("COMPLETE", "PRUNED")
    numbers = sorted(int(r.data.tags["optuna_trial"]) for r in runs["trial"])
    assert numbers == [0, 1, 2]
    for name in ("history", "importances", "parallel"):
        assert (tmp_path / "reports" / f"nest_{name}.png").stat().st_size > 1000
    artifacts = {f.path for f in Store(tuning_mlflow).client.list_artifacts(study_run.info.run_id)}
    assert {"nest_history.png", "nest_best.yaml", "nest_summary.json"} <= artifacts
    # rerunning the finished study does no work and reuses the same study run
    again = tune(settings, target="classifier", data=_data(tiny), study_name="nest",
                 n_trials=3, storage=str(journal), out_dir=tmp_path / "reports",
                 objective=FastObjective(settings), echo=lambda s: None)
    assert again["this_worker"]["complete"] + again["this_worker"]["pruned"] == 0
    assert len(_runs(tuning_mlflow, "nest")["study"]) == 1


class _Worsening:
    """Every trial worse than the one before at every step: the median pruner must prune."""

    def __call__(self, trial: optuna.Trial) -> float:
        trial.suggest_float("lr", 1e-4, 1e-3, log=True)
        for step in range(4):
            trial.report(1.0 - 0.1 * trial.number, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.0 - 0.1 * trial.number


def test_median_pruning_and_pruned_trials_count(tmp_path, tiny, tuning_mlflow):
    settings = load_settings(tiny["params"])
    summary = tune(settings, target="classifier", data=_data(tiny), study_name="prune",
                   n_trials=5, storage=str(tmp_path / "j.log"), out_dir=tmp_path / "r",
                   objective=_Worsening(), echo=lambda s: None)
    assert summary["trials"]["pruned"] >= 2
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 5
    states = {r.data.tags["optuna_state"] for r in _runs(tuning_mlflow, "prune")["trial"]}
    assert states == {"COMPLETE", "PRUNED"}


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path, tiny, tuning_mlflow):
    journal, name, n = tmp_path / ".optuna" / "journal.log", "resume", 4
    proc = _worker(tmp_path, tiny, name, n, journal, DEEPFN_TEST_STEP_S="0.15")
    killed = None
    deadline = time.monotonic() + 60
    while killed is None:
        assert time.monotonic() < deadline and proc.poll() is None, "worker ended early"
        time.sleep(0.05)
        if not journal.exists():
            continue
        try:
            study = optuna.load_study(study_name=name, storage=make_storage(str(journal)))
        except KeyError:
            continue
        done = study.get_trials(states=FINISHED)
        mid = [t for t in study.get_trials(states=(TrialState.RUNNING,))
               if t.intermediate_values and "mlflow_run_id" in t.user_attrs]
        if len(done) >= 2 and mid:
            os.kill(proc.pid, signal.SIGKILL)
            killed = mid[0]
    proc.wait(timeout=30)
    study = optuna.load_study(study_name=name, storage=make_storage(str(journal)))
    assert study.trials[killed.number].state == TrialState.RUNNING  # left behind by the kill

    _finish(_worker(tmp_path, tiny, name, n, journal, DEEPFN_TEST_STEP_S="0.02"))
    study = optuna.load_study(study_name=name, storage=make_storage(str(journal)))
    trials = study.get_trials()
    assert len(study.get_trials(states=FINISHED)) == n
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # unique, no gaps
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["fail_reason"]
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state in FINISHED
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert [t for t in trials if t.state == TrialState.FAIL] == [dead]
    c = Store(tuning_mlflow).client
    assert c.get_run(killed.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert len(_runs(tuning_mlflow, name)["study"]) == 1


def test_two_concurrent_workers_share_one_study(tmp_path, tiny, tuning_mlflow):
    journal, name, n = tmp_path / ".optuna" / "journal.log", "pair", 6
    # each worker's first trial waits for the other's: both are inside a trial at once
    procs = [_worker(tmp_path, tiny, name, n, journal, *extra, DEEPFN_TEST_STEP_S="0.1",
                     DEEPFN_TEST_RENDEZVOUS=str(tmp_path / "met"))
             for extra in ([], ["--no-report"])]
    for p in procs:
        _finish(p)
    study = optuna.load_study(study_name=name, storage=make_storage(str(journal)))
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == n  # exactly the requested total: none lost, none extra
    workers = {t.user_attrs["worker"] for t in finished}
    assert {int(w.split(":")[1]) for w in workers} == {p.pid for p in procs}  # both worked
    others = [t for t in study.get_trials() if t.state not in FINISHED]
    assert all(t.user_attrs.get("surplus") for t in others)  # at most a race-lost empty slot
    runs = _runs(tuning_mlflow, name)
    assert len(runs["study"]) == 1
    assert sorted(int(r.data.tags["optuna_trial"]) for r in runs["trial"]) == sorted(
        t.number for t in finished)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed")
def test_postgresql_storage_runs_a_study_and_reclaims_a_dead_workers_trial(
        tmp_path, tiny, tuning_mlflow, postgres_url):
    settings = load_settings(tiny["params"])
    storage = make_storage(postgres_url)
    assert storage.get_heartbeat_interval() == 30  # RDB: heartbeats for other machines
    # a trial left RUNNING by a dead worker on this host
    study = optuna.create_study(study_name="pg", storage=storage, direction="maximize")
    ghost = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 3e-3, log=True)})
    ghost.set_user_attr("worker", f"{os.uname().nodename}:999999999:1")
    summary = tune(settings, target="classifier", data=_data(tiny), study_name="pg",
                   n_trials=3, storage=postgres_url, out_dir=tmp_path / "r",
                   objective=FastObjective(settings), echo=lambda s: None)
    assert summary["storage"].startswith("postgresql://deepfn@127.0.0.1")
    study = optuna.load_study(study_name="pg", storage=make_storage(postgres_url))
    assert len(study.get_trials(states=FINISHED)) == 3
    assert study.trials[ghost.number].state == TrialState.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == ghost.number]
    assert retry.params["lr"] == ghost.params["lr"] and retry.state in FINISHED
    assert summary["this_worker"]["reclaimed"] == 1
