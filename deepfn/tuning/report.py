"""What a study leaves behind: MLflow runs, plots, the best parameters as ``params.yaml`` keys.

MLflow (experiment ``deepfn-tuning``): one *study run* per (study, storage) -- found again by its
``run_key`` tag on resume and shared by concurrent workers -- and one *trial run* per trial
nested under it (``mlflow.parentRunId``) holding the trial number, parameters, the intermediate
validation scores (``val_score`` by step) and the final ``value``.  This replaces
``optuna_integration.mlflow.MLflowCallback``, which is deprecated since optuna-integration 4.9
and logs a trial only after it ends (no intermediate scores, nothing for a killed trial, one
fixed tag set).

Files in ``out_dir`` (``reports/tuning``): ``<study>_history.png``, ``<study>_importances.png``
(from 2 completed trials), ``<study>_parallel.png``, ``<study>_best.yaml`` (dotted keys, loadable
with ``yaml.safe_load``), ``<study>_best_command.txt`` (``dvc exp run -S ...``) and
``<study>_summary.json``; ``status.json`` for the DVC stage.
"""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from deepfn.tracking import EXPERIMENT_TUNING, RunWriter, Store, run_key
from deepfn.tracking import names as n
from deepfn.tuning.space import to_overrides
from deepfn.utils.io import write_text

__all__ = ["StudyTracker", "active_trial_run", "write_plots", "export_best", "dvc_command"]

# The trial run of the objective running in this thread/task (see StudyTracker.trial_run).
_TRIAL_RUN: ContextVar[RunWriter | None] = ContextVar("deepfn_trial_run", default=None)


def active_trial_run() -> RunWriter | None:
    """The MLflow run of the trial whose objective is running here (None outside a study)."""
    return _TRIAL_RUN.get()


class StudyTracker:
    """MLflow study run + nested trial runs (see the module docstring)."""

    def __init__(self, *, study_name: str, storage: str, target: str, tags: Mapping[str, str],
                 params: Mapping[str, Any] | None = None, uri: str | None = None,
                 configured_uri: str | None = None) -> None:
        self.study_name, self.target = study_name, target
        self.store = Store(uri, configured=configured_uri)
        self.key = run_key(kind="optuna-study", study=study_name, storage=storage)
        self.tags = {**tags, n.TAG_OPTUNA_STUDY: study_name, n.TAG_OPTUNA_STORAGE: storage,
                     n.TAG_TUNE_TARGET: target}
        self.params = dict(params or {})
        self.run_id: str | None = None

    def open(self) -> str:
        """Find (or create) the study run and mark it RUNNING; concurrent openers converge on the
        oldest run with this key (a duplicate made in a race is deleted)."""
        c = self.store.client
        runs = self._find()
        if not runs:
            run = self.store.create_run(
                EXPERIMENT_TUNING, run_name=f"study-{self.study_name}", params=self.params,
                tags={**self.tags, n.TAG_RUN_KEY: self.key, n.TAG_ROLE: n.ROLE_STUDY})
            run.flush()
            runs = self._find()
            for dup in runs[1:]:
                if dup.info.run_id == run.run_id:
                    c.delete_run(dup.info.run_id)
        self.run_id = runs[0].info.run_id
        c.update_run(self.run_id, status="RUNNING")
        return self.run_id

    def _find(self) -> list[Any]:
        exp = self.store.experiment_id(EXPERIMENT_TUNING)
        runs = self.store.client.search_runs(
            [exp], filter_string=f"tags.{n.TAG_RUN_KEY} = '{self.key}'", max_results=50)
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    @contextmanager
    def trial_run(self, trial: optuna.Trial) -> Iterator[RunWriter]:
        """The trial's MLflow run, :func:`active_trial_run` while the objective runs; every
        write goes out at once (a killed trial keeps its intermediate scores)."""
        tags = {**self.tags, n.TAG_ROLE: n.ROLE_TRIAL, n.TAG_OPTUNA_TRIAL: str(trial.number),
                n.TAG_OPTUNA_TRIAL_ID: str(trial._trial_id)}
        frozen = trial.study._storage.get_trial(trial._trial_id)  # Trial has no system_attrs
        retried = frozen.system_attrs.get("failed_trial")
        if retried is not None:
            tags[n.TAG_OPTUNA_RETRY_OF] = str(retried)
        pruned: optuna.TrialPruned | None = None
        with self.store.start_run(EXPERIMENT_TUNING,
                                  run_name=f"{self.study_name}-trial-{trial.number}", tags=tags,
                                  parent_run_id=self.run_id, flush_every=1) as run:
            trial.set_user_attr("mlflow_run_id", run.run_id)
            token = _TRIAL_RUN.set(run)
            try:
                yield run
            except optuna.TrialPruned as exc:  # a pruned run is FINISHED, not FAILED
                run.set_tags({n.TAG_OPTUNA_STATE: "PRUNED"})
                pruned = exc
            else:
                run.set_tags({n.TAG_OPTUNA_STATE: "COMPLETE"})
            finally:
                _TRIAL_RUN.reset(token)
        if pruned is not None:
            raise pruned

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Study callback: trial params/value on its run, progress metrics on the study run
        (one ``log_batch`` each: every sqlite commit costs ~10 ms)."""
        from mlflow.exceptions import MlflowException

        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id is None or self.run_id is None:
            return
        step = trial.number
        run = self.store.writer(run_id)
        if trial.value is not None:
            run.log_metric(n.METRIC_VALUE, float(trial.value))
        run.log_params(trial.params)
        try:
            run.flush()
        except MlflowException:  # params already logged with another repr by the objective
            run.drop_params()
            run.flush()
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                            TrialState.PRUNED))
        metrics = {n.METRIC_N_FINISHED: float(len(finished))}
        if trial.value is not None:
            metrics[n.METRIC_TRIAL_VALUE] = float(trial.value)
        if _complete(study):
            metrics[n.METRIC_BEST_VALUE] = float(study.best_value)
        study_run = self.store.writer(self.run_id)
        study_run.log_metrics(metrics, step=step)
        study_run.flush()

    def mark_killed(self, trial: FrozenTrial) -> None:
        """A reclaimed trial's run (left RUNNING by its dead worker) -> KILLED."""
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            c = self.store.client
            if c.get_run(run_id).info.status == "RUNNING":
                c.set_terminated(run_id, status="KILLED")

    def close(self, status: str, files: list[Path], summary: Mapping[str, Any]) -> None:
        if self.run_id is None:
            return
        run = self.store.writer(self.run_id)
        for f in files:
            run.log_artifact(f)
        run.log_metrics({k: float(v) for k, v in summary.items()
                         if isinstance(v, int | float) and not isinstance(v, bool)})
        run.terminate(status)


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def write_plots(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """History, parameter importances (>= 2 completed trials) and parallel coordinates as PNG.

    A plot that cannot be drawn (too few trials, a constant parameter) is skipped with a note in
    the log, never an error: the study's results matter more than its pictures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(_complete(study))
    # fANOVA (Optuna's default evaluator); fewer trees while the study is small (seconds saved)
    evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=16 if n < 30 else 64, seed=0)
    plots: dict[str, tuple[Callable[[optuna.Study], Any], int]] = {
             "history": (ovm.plot_optimization_history, 1),
             "importances": (partial(ovm.plot_param_importances, evaluator=evaluator), 2),
             "parallel": (ovm.plot_parallel_coordinate, 1)}
    written = []
    for name, (fn, need) in plots.items():
        path = out_dir / f"{study.study_name}_{name}.png"
        if n < need:
            path.unlink(missing_ok=True)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            optuna.logging.get_logger(__name__).warning("no %s plot: %s", name, exc)
            plt.close("all")
    return written


def _scalar(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def dvc_command(overrides: Mapping[str, Any]) -> str:
    """``dvc exp run -S key=value ...`` for the overrides."""
    return "dvc exp run " + " ".join(
        f"-S {shlex.quote(f'{k}={_scalar(v)}')}" for k, v in overrides.items())


def export_best(study: optuna.Study, target: str, out_dir: str | Path) -> dict[str, Any] | None:
    """Write ``<study>_best.yaml`` and ``<study>_best_command.txt``; None before any COMPLETE."""
    import yaml

    if not _complete(study):
        return None
    best = study.best_trial
    overrides = to_overrides(target, best.params)
    cmd = dvc_command(overrides)
    out_dir = Path(out_dir)
    header = (f"# Best trial {best.number} of Optuna study '{study.study_name}' ({target}): "
              f"validation score {best.value:.4f}\n"
              "# params.yaml keys; apply with:\n"
              f"#   {cmd}\n")
    yaml_path = out_dir / f"{study.study_name}_best.yaml"
    write_text(yaml_path, header + yaml.safe_dump(overrides, sort_keys=False))
    write_text(out_dir / f"{study.study_name}_best_command.txt", cmd + "\n")
    return {"yaml": str(yaml_path), "command": cmd, "overrides": overrides,
            "trial": best.number, "value": best.value}

