"""Storages, studies and the worker loop: resumable, several processes per study, no lost trials.

Storage (``--storage`` / ``tune.storage``):

* unset or a file path (``journal:PATH`` too): :class:`optuna.storages.JournalStorage` on a
  :class:`~optuna.storages.journal.JournalFileBackend` (default ``.optuna/journal.log``): an
  append-only log with a lock file, safe for several worker processes on one machine;
* ``postgresql://user@host/db`` (or ``mysql://``): :class:`~optuna.storages.RDBStorage` for
  workers on several machines, with heartbeats (a trial whose worker stops beating for
  :data:`GRACE_PERIOD_S` is failed and re-queued by Optuna);
* ``sqlite:///`` works but Optuna advises against it for parallel workers (a warning says so).

``n_trials`` is the study's target count of finished trials: only COMPLETE and PRUNED count
(:class:`optuna.study.MaxTrialsCallback` with those states), so rerunning the same command after a
kill tops the study up to the target.  A trial left RUNNING by a dead worker on this machine
(journal files have no heartbeat) is found by its recorded ``worker`` (host, pid, process start
time), marked FAIL and re-queued with its parameters (:func:`reclaim_stale_trials`).  A worker
starts a trial only while ``finished + running < n_trials``; when two workers race for the last
slot the lower trial number wins and the other trial ends at once as FAIL with user attr
``surplus`` (it trained nothing).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from deepfn.errors import DeepFNError

__all__ = [
    "DEFAULT_JOURNAL", "HEARTBEAT_INTERVAL_S", "GRACE_PERIOD_S", "COUNTED", "SurplusTrial",
    "RunStats", "make_storage", "storage_label", "make_pruner", "make_sampler", "open_study",
    "worker_token", "requeue", "reclaim_stale_trials", "study_summary", "count_finished",
    "run_study",
]

DEFAULT_JOURNAL = ".optuna/journal.log"
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
COUNTED: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRY = 2
_log = logging.getLogger(__name__)

Objective = Callable[[optuna.Trial], float]


class SurplusTrial(Exception):
    """Raised for a trial created after the study already had its ``n_trials`` slots taken."""


_WORKER_ATTRS = ("worker", "mlflow_run_id", "fail_reason", "surplus")


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a WAITING copy of a dead/interrupted trial (same parameters), at most MAX_RETRY times.

    Like :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (same ``failed_trial`` and
    ``retry_history`` system attrs) but without the dead worker's attrs, so the copy is never
    mistaken for a trial of that worker.
    """
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    study.add_trial(optuna.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k not in _WORKER_ATTRS},
        system_attrs={**trial.system_attrs, "failed_trial": history[0],
                      "retry_history": history}))


def _is_rdb(url: str) -> bool:
    return "://" in url and not url.startswith("journal:")


def _driver_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg2://`` unless psycopg 3 is installed
    (SQLAlchemy 2.1 defaults to psycopg 3; the project ships psycopg2-binary)."""
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg") is None:
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def make_storage(url: str | None = None) -> BaseStorage:
    """A storage for ``url`` (see the module docstring); the journal's folder is created."""
    if url and _is_rdb(url):
        if url.startswith("sqlite"):
            warnings.warn("SQLite storage: Optuna advises against it for parallel workers; use "
                          "the default journal file (one machine) or postgresql:// (several)",
                          stacklevel=2)
        try:
            with warnings.catch_warnings():  # heartbeat args are "experimental" since Optuna 2
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(_driver_url(url), heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                  grace_period=GRACE_PERIOD_S,
                                  heartbeat_stale_trial_callback=requeue)
        except Exception as exc:  # sqlalchemy/psycopg2 errors: unreachable server, bad URL
            raise DeepFNError(f"--storage {storage_label(url)}: cannot open the study database "
                              f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}); "
                              "check the URL, that the server runs and the database exists"
                              ) from exc
    path = Path((url or DEFAULT_JOURNAL).removeprefix("journal:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def storage_label(url: str | None) -> str:
    """A printable, password-free name of the storage (also keys the MLflow study run)."""
    if url and _is_rdb(url):
        from sqlalchemy.engine import make_url

        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # not parseable: still never print it whole
            return url.split("://", 1)[0] + "://..."
    return "journal:" + str(Path((url or DEFAULT_JOURNAL).removeprefix("journal:")).resolve())


def make_pruner(kind: str) -> optuna.pruners.BasePruner:
    """``median`` | ``successive_halving`` | ``none`` on the intermediate validation scores."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise DeepFNError(f"tune.pruner: {kind!r} is not a pruner; allowed: median, "
                      "successive_halving, none")


def make_sampler(seed: int, n_trials: int, salt: int = 0) -> optuna.samplers.TPESampler:
    """TPE with the constant liar (parallel workers don't pile onto the same point).

    ``salt`` (the worker's pid and the study's size) keeps two workers that start together from
    drawing the same random start-up points; a study is therefore not bit-reproducible.
    """
    return optuna.samplers.TPESampler(seed=(seed + salt) % 2**32, constant_liar=True,
                                      n_startup_trials=min(10, max(2, n_trials // 3)))


def open_study(name: str, storage: BaseStorage, *, pruner: str = "median", seed: int = 0,
               n_trials: int = 20) -> optuna.Study:
    """Create or load (``load_if_exists``) the maximizing study ``name``."""
    salt = os.getpid() * 7919
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                load_if_exists=True, pruner=make_pruner(pruner),
                                sampler=make_sampler(seed, n_trials, salt))
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise DeepFNError(f"study {name!r} exists and minimizes; pick another --study name")
    study.sampler = make_sampler(seed, n_trials, salt + len(study.trials))
    return study


# -- which worker owns a RUNNING trial --------------------------------------------------------

def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks (Linux), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def worker_token(pid: int | None = None) -> str:
    """``host:pid:start`` of this process (start time guards against pid reuse)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid) or '?'}"


def _owner_alive(token: str) -> bool | None:
    """True/False for a worker on this host; None (unknown) for another host."""
    host, pid, start = (token.rsplit(":", 2) + ["", "", ""])[:3]
    if host != socket.gethostname():
        return None
    if not pid.isdigit():
        return False
    current = _proc_start(int(pid))
    if current is None:
        return False
    return start in ("?", current)


@contextmanager
def _host_lock(key: str) -> Iterator[None]:
    """One reclaimer per study at a time on this machine."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"deepfn-tune-{digest}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_stale(t: FrozenTrial, now: float) -> bool:
    token = t.user_attrs.get("worker")
    if token is None:  # killed between creating the trial and recording its worker
        start = t.datetime_start.timestamp() if t.datetime_start else now
        return now - start > GRACE_PERIOD_S
    return _owner_alive(str(token)) is False


def reclaim_stale_trials(study: optuna.Study,
                         on_reclaim: Callable[[FrozenTrial], None] | None = None) -> list[int]:
    """Mark RUNNING trials of dead local workers FAIL and re-queue them (same parameters).

    Returns the reclaimed trial numbers.  ``on_reclaim`` gets each one (e.g. to close its MLflow
    run).  Safe with concurrent workers: a host-wide lock plus a re-read under the lock.
    """
    storage = study._storage
    done: list[int] = []
    with _host_lock(f"{study.study_name}@{type(storage).__name__}"):
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not _is_stale(t, time.time()):
                continue
            fresh = storage.get_trial(t._trial_id)
            if fresh.state != TrialState.RUNNING:
                continue
            storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                        f"worker {t.user_attrs.get('worker', '?')} died; "
                                        f"reclaimed by {worker_token()}")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            requeue(study, storage.get_trial(t._trial_id))
            done.append(t.number)
            if on_reclaim is not None:
                on_reclaim(fresh)
    if done:
        _log.warning("re-queued trial(s) %s left RUNNING by a dead worker", done)
    return done


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def _live_running(study: optuna.Study, below: int | None = None,
                  exclude: int | None = None) -> int:
    now = time.time()
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if t.number != exclude and (below is None or t.number < below)
               and not _is_stale(t, now))


@dataclass
class RunStats:
    """What this worker did: trials it finished, wall time, throughput."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    reclaimed: int = 0
    seconds: float = 0.0
    total_finished: int = 0

    @property
    def trials_per_min(self) -> float:
        done = self.complete + self.pruned
        return 60.0 * done / self.seconds if self.seconds > 0 else 0.0


def run_study(study: optuna.Study, objective: Objective, n_trials: int, *,
              callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] | None = None,
              on_reclaim: Callable[[FrozenTrial], None] | None = None) -> RunStats:
    """Work on ``study`` until it has ``n_trials`` COMPLETE+PRUNED trials (across all workers).

    The objective gets a live :class:`optuna.Trial`; it may raise :class:`optuna.TrialPruned`.
    An interrupted trial (Ctrl-C) is re-queued before the interrupt propagates.
    """
    stats = RunStats()
    stats.reclaimed = len(reclaim_stale_trials(study, on_reclaim))
    start_finished = count_finished(study)
    stats.total_finished = start_finished
    if start_finished >= n_trials:
        return stats
    me = worker_token()

    def wrapped(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", me)
        # a worker that died while this one runs: its trial is re-queued now, not at next start
        stats.reclaimed += len(reclaim_stale_trials(study, on_reclaim))
        taken = count_finished(study) + _live_running(study, below=trial.number)
        if taken >= n_trials:
            trial.set_user_attr("surplus", True)
            study.stop()
            raise SurplusTrial(f"study already has {taken} finished or running trials of "
                               f"{n_trials}; trial {trial.number} trained nothing")
        try:
            return objective(trial)
        except KeyboardInterrupt:
            storage = study._storage
            requeue(study, storage.get_trial(trial._trial_id))
            raise

    def account(st: optuna.Study, frozen: FrozenTrial) -> None:
        if frozen.user_attrs.get("surplus"):
            return
        if frozen.state == TrialState.COMPLETE:
            stats.complete += 1
        elif frozen.state == TrialState.PRUNED:
            stats.pruned += 1
        else:
            stats.failed += 1

    def stop_when_full(st: optuna.Study, frozen: FrozenTrial) -> None:
        if count_finished(st) + _live_running(st, exclude=frozen.number) >= n_trials:
            st.stop()

    cbs: list[Callable[[optuna.Study, FrozenTrial], None]] = [
        account, optuna.study.MaxTrialsCallback(n_trials, states=COUNTED), stop_when_full,
        *(callbacks or [])]
    t0 = time.perf_counter()
    try:
        study.optimize(wrapped, n_trials=n_trials - start_finished + 1, callbacks=cbs,
                       catch=(SurplusTrial,))
    finally:
        stats.seconds = time.perf_counter() - t0
        stats.total_finished = count_finished(study)
    return stats


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Counts per state and the best trial (None before the first COMPLETE)."""
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    best = None
    if counts["complete"]:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params}
    return {"study": study.study_name, "trials": counts, "best": best}
