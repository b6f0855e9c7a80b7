"""Hyperparameter studies with Optuna for the classifier and the normalizer (docs/tuning.md).

    from deepfn.tuning import tune, TuneData
    data = TuneData(original=Path("data/preprocessed/clf"),
                    template=Path("data/template/template.json"))
    summary = tune(settings, target="classifier", data=data, n_trials=20)

Modules: :mod:`~deepfn.tuning.space` (search spaces -> ``params.yaml`` keys),
:mod:`~deepfn.tuning.study` (storages, resumable multi-worker loop),
:mod:`~deepfn.tuning.objectives` (validation-only objectives),
:mod:`~deepfn.tuning.report` (MLflow runs, plots, best-params export).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError
from deepfn.tuning.objectives import TuneData
from deepfn.tuning.space import PARAM_KEYS, TARGETS

__all__ = ["TuneData", "tune", "default_study_name", "TARGETS", "PARAM_KEYS"]


def default_study_name(settings: Settings, target: str) -> str:
    """``tune.study`` when ``tune.target`` is this target, else ``deepfn-<target>``."""
    return settings.tune.study if settings.tune.target == target else f"deepfn-{target}"


def _search_space(settings: Settings, target: str) -> dict[str, Any]:
    t = settings.tune
    return {f"space.{name}": list(v) if isinstance(v := getattr(t, name, None), tuple) else v
            for name in PARAM_KEYS[target] if hasattr(t, name)}


def tune(settings: Settings, *, target: str, data: TuneData, study_name: str | None = None,
         n_trials: int | None = None, storage: str | None = None,
         out_dir: str | Path = "reports/tuning", splits: int = 2,
         objective: Callable[[optuna.Trial], float] | None = None, report: bool = True,
         echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Create or resume a study and work on it until it has ``n_trials`` finished trials.

    ``objective`` replaces the real one (tests); it must suggest the target's parameter names.
    ``report=False`` skips the plots and the best-params export (extra workers of a study).
    Returns the summary also written to ``<out_dir>/<study>_summary.json``.
    """
    from deepfn.data.corpus import data_version
    from deepfn.tracking import common_tags
    from deepfn.tuning.report import StudyTracker, export_best, write_plots
    from deepfn.tuning.study import make_storage, open_study, run_study, storage_label
    from deepfn.tuning.study import study_summary as summarize
    from deepfn.utils.io import write_json

    if target not in TARGETS:
        raise DeepFNError(f"tune target {target!r}: allowed: {', '.join(TARGETS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or default_study_name(settings, target)
    n_trials = n_trials or settings.tune.n_trials
    url = storage or settings.tune.storage
    study = open_study(name, make_storage(url), pruner=settings.tune.pruner,
                       seed=settings.tune.seed, n_trials=n_trials)
    have = study.user_attrs.get("target")
    if have is None:
        study.set_user_attr("target", target)
    elif have != target:
        raise DeepFNError(f"study {name!r} tunes the {have}, not the {target}; pick another "
                          "--study name")
    label = storage_label(url)
    echo(f"study {name} ({target}) on {label}: {n_trials} finished trials wanted")
    obj = objective
    closer: Callable[[], None] = lambda: None  # noqa: E731
    if obj is None:
        from deepfn.tuning.objectives import build_objective

        built = build_objective(target, settings, data, splits)
        obj, closer = built, built.close
    tracker = StudyTracker(
        study_name=name, storage=label, target=target, configured_uri=settings.tracking.uri,
        tags=common_tags(stage="tune", profile=settings.profile,
                         data_version=data_version(data.original)),
        params={"n_trials": n_trials, "pruner": settings.tune.pruner,
                "profile": settings.profile, **_search_space(settings, target),
                **{f"subjects.{role}": " ".join(ids)
                   for role, ids in getattr(obj, "subjects", {}).items()}})
    tracker.open()

    def tracked(trial: optuna.Trial) -> float:
        with tracker.trial_run(trial):
            return obj(trial)

    status, stats, t0 = "FAILED", None, time.perf_counter()
    try:
        stats = run_study(study, tracked, n_trials, callbacks=[tracker.after_trial],
                          on_reclaim=tracker.mark_killed)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        closer()
        out = Path(out_dir)
        files = write_plots(study, out) if report else []
        best = export_best(study, target, out) if report else None
        summary: dict[str, Any] = {**summarize(study), "target": target, "storage": label,
                                   "n_trials": n_trials, "status": status,
                                   "mlflow_study_run": tracker.run_id, "best_export": best}
        if stats is not None:
            summary["this_worker"] = {
                "complete": stats.complete, "pruned": stats.pruned, "failed": stats.failed,
                "reclaimed": stats.reclaimed, "seconds": round(stats.seconds, 2),
                "trials_per_min": round(stats.trials_per_min, 2)}
        summary_path = out / f"{name}_summary.json"
        write_json(summary_path, summary)
        if best:
            files += [Path(best["yaml"]), out / f"{name}_best_command.txt"]
        tracker.close(status, [*files, summary_path], {
            "wall_seconds": time.perf_counter() - t0,
            **({"best_value_final": best["value"]} if best else {})})
    counts = summary["trials"]
    echo(f"study {name}: {counts['complete']} complete, {counts['pruned']} pruned, "
         f"{counts['fail']} failed; this worker {summary['this_worker']['trials_per_min']} "
         "trials/min")
    short = n_trials - counts["complete"] - counts["pruned"]
    if short > 0:
        echo(f"the study is {short} finished trial(s) short of {n_trials} (failed trials, or a "
             "trial still running elsewhere); rerun the same command to top it up")
    if best:
        echo(f"best trial {best['trial']}: validation score {best['value']:.4f} -> {best['yaml']}")
        echo(best["command"])
    elif not report:
        echo("--no-report: plots and best parameters left to another worker")
    else:
        echo("no completed trial yet: nothing to export")
    return summary
