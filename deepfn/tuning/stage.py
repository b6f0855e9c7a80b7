"""The tune stage and :func:`tune`, one study from open to report, as named steps.

    tune(settings, target="classifier", data=TuneData(...))
      open the study            create or resume it; it must tune this target
      pick the objective        the real one (objectives.py) or a given one (tests)
      open the study run        MLflow: one study run, a nested run per trial (report.py)
      work on the study         until it has n_trials finished trials (study.py): in this
                                process, or with engine ray as N workers, one Ray task each
      write the results         plots, best params, summary; close the study run
      say how it went           counts, throughput, the best trial and how to apply it

    run_tune(settings, original=..., template=..., out=...)   # the tune stage (TUNE)
      a quick no-op unless tune.enabled (``<out>/status.json`` says so), else tune(tune.target)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import optuna

from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.tuning.objectives import TuneData
from deepfn.tuning.space import PARAM_KEYS, TARGETS
from deepfn.tuning.study import RunStats, make_storage, open_study, run_study, storage_label
from deepfn.tuning.study import study_summary as summarize

__all__ = ["tune", "run_tune", "default_study_name", "TUNE"]

Objective = Callable[[optuna.Trial], float]
Echo = Callable[[str], None]


def default_study_name(settings: Settings, target: str) -> str:
    """``tune.study`` when ``tune.target`` is this target, else ``deepfn-<target>``."""
    return settings.tune.study if settings.tune.target == target else f"deepfn-{target}"


@dataclass(frozen=True)
class _Plan:
    """Which study, where, how many finished trials it should end with."""

    name: str
    target: str
    n_trials: int
    storage: str | None
    label: str  # printable, password-free storage name

    @property
    def rdb(self) -> bool:
        return not self.label.startswith("journal:")


def _plan(settings: Settings, target: str, study_name: str | None, n_trials: int | None,
          storage: str | None) -> _Plan:
    if target not in TARGETS:
        raise DeepFNError(f"tune target {target!r}: allowed: {', '.join(TARGETS)}")
    url = storage or settings.tune.storage
    return _Plan(name=study_name or default_study_name(settings, target), target=target,
                 n_trials=n_trials or settings.tune.n_trials, storage=url,
                 label=storage_label(url))


def _open_study(settings: Settings, plan: _Plan) -> optuna.Study:
    """Create or resume the study; a study made for the other target is refused."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(plan.name, make_storage(plan.storage), pruner=settings.tune.pruner,
                       seed=settings.tune.seed, n_trials=plan.n_trials)
    have = study.user_attrs.get("target")
    if have is None:
        study.set_user_attr("target", plan.target)
    elif have != plan.target:
        raise DeepFNError(f"study {plan.name!r} tunes the {have}, not the {plan.target}; pick "
                          "another --study name")
    return study


def _pick_objective(settings: Settings, plan: _Plan, data: TuneData, splits: int,
                    given: Objective | None) -> tuple[Objective, Callable[[], None]]:
    """The objective and what closes it (the real one holds temporary corpora)."""
    if given is not None:
        return given, lambda: None
    from deepfn.tuning import objectives  # looked up at call time: tests swap the builder

    built = objectives.build_objective(plan.target, settings, data, splits)
    return built, built.close


def _search_space(settings: Settings, target: str) -> dict[str, Any]:
    t = settings.tune
    return {f"space.{name}": list(v) if isinstance(v := getattr(t, name, None), tuple) else v
            for name in PARAM_KEYS[target] if hasattr(t, name)}


def _open_study_run(settings: Settings, plan: _Plan, data: TuneData, objective: Objective
                    ) -> Any:
    """The MLflow study run (found again on resume), with the search space as params."""
    from deepfn.data.corpus import data_version
    from deepfn.tracking import common_tags
    from deepfn.tuning.report import StudyTracker

    tracker = StudyTracker(
        study_name=plan.name, storage=plan.label, target=plan.target,
        configured_uri=settings.tracking.uri,
        tags=common_tags(stage="tune", profile=settings.profile,
                         data_version=data_version(data.original)),
        params={"n_trials": plan.n_trials, "pruner": settings.tune.pruner,
                "profile": settings.profile, **_search_space(settings, plan.target),
                **{f"subjects.{role}": " ".join(ids)
                   for role, ids in getattr(objective, "subjects", {}).items()}})
    tracker.open()
    return tracker


def _work(study: optuna.Study, plan: _Plan, objective: Objective, tracker: Any) -> RunStats:
    """Run trials, each inside its MLflow trial run, until the study is full."""

    def tracked(trial: optuna.Trial) -> float:
        with tracker.trial_run(trial):
            return objective(trial)

    return run_study(study, tracked, plan.n_trials, callbacks=[tracker.after_trial],
                     on_reclaim=tracker.mark_killed)


def _ray_worker(settings: Settings, plan: _Plan, data: TuneData, splits: int,
                objective: Objective | None, tags: dict[str, str], uri: str, run_id: str
                ) -> RunStats:
    """One Optuna worker as a Ray task: the study from its storage, its own objective (``data``
    read where the task runs), its trials as runs nested under the driver's study run."""
    from deepfn.tuning.report import StudyTracker

    study = _open_study(settings, plan)
    obj, close = _pick_objective(settings, plan, data, splits, objective)
    tracker = StudyTracker(study_name=plan.name, storage=plan.label, target=plan.target,
                           tags=tags, uri=uri)
    tracker.run_id = run_id
    try:
        return _work(study, plan, obj, tracker)
    finally:
        close()


def _absolute_sqlite(uri: str) -> str:
    """``sqlite:///rel/path`` -> ``sqlite:////abs/path`` (a Ray worker's cwd is not ours)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def _work_on_ray(settings: Settings, plan: _Plan, data: TuneData, splits: int,
                 objective: Objective | None, tracker: Any, workers: int) -> RunStats:
    """``workers`` Optuna workers (0: one per CPU, or per GPU, of the cluster) as Ray tasks on
    one study, until it has ``plan.n_trials`` finished trials; their stats summed.

    The study's storage must reach every worker: a journal file on a one-machine cluster, an
    RDB (PostgreSQL) when the cluster spans machines; likewise a sqlite MLflow store.  A task
    whose worker process dies is run again (``max_retries``); the new worker re-queues the
    trial the dead one left RUNNING (:func:`deepfn.tuning.study.reclaim_stale_trials`).
    """
    from deepfn.compute.engine import ray_session, require_ray, task_options

    with ray_session(settings.compute.address) as cluster:
        ray = require_ray(settings.compute.address)
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        uri = _absolute_sqlite(tracker.store.uri)
        if nodes > 1 and not plan.rdb:
            raise DeepFNError(f"--storage {plan.label}: a journal file serves workers on one "
                              f"machine, the Ray cluster has {nodes}; use postgresql://... "
                              "(docs/tuning.md)")
        if nodes > 1 and uri.startswith("sqlite:"):
            raise DeepFNError(f"tracking: the sqlite store {uri} is on this machine and the Ray "
                              f"cluster has {nodes}; run make tracking-server and export "
                              "MLFLOW_TRACKING_URI (docs/cluster.md)")
        options = task_options(settings.compute.device, cluster)
        slots = cluster.gpus if options.get("num_gpus") else cluster.cpus
        n = workers or max(1, int(slots))
        # paths as absolute ones: a worker's cwd is not the driver's
        plan = plan if plan.rdb else replace(plan, storage=plan.label)
        data = replace(data, **{f.name: Path(v).resolve() for f in fields(data)
                                if (v := getattr(data, f.name)) is not None})
        task = ray.remote(_ray_worker).options(**options)
        refs = [task.remote(settings, plan, data, splits, objective, dict(tracker.tags), uri,
                            tracker.run_id) for _ in range(n)]
        t0 = time.perf_counter()
        try:
            parts: list[RunStats] = ray.get(refs)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
    total = RunStats(seconds=time.perf_counter() - t0)
    for st in parts:
        total.complete += st.complete
        total.pruned += st.pruned
        total.failed += st.failed
        total.reclaimed += st.reclaimed
        total.total_finished = max(total.total_finished, st.total_finished)
    return total


def _write_results(study: optuna.Study, plan: _Plan, out: Path, report: bool, status: str,
                   stats: RunStats | None, tracker: Any, seconds: float) -> dict[str, Any]:
    """Plots + best params (``report``), ``<study>_summary.json``; closes the study run."""
    from deepfn.tuning.report import export_best, write_plots
    from deepfn.utils.io import write_json

    files = write_plots(study, out) if report else []
    best = export_best(study, plan.target, out) if report else None
    summary: dict[str, Any] = {**summarize(study), "target": plan.target, "storage": plan.label,
                               "n_trials": plan.n_trials, "status": status,
                               "mlflow_study_run": tracker.run_id, "best_export": best}
    if stats is not None:
        summary["this_worker"] = {
            "complete": stats.complete, "pruned": stats.pruned, "failed": stats.failed,
            "reclaimed": stats.reclaimed, "seconds": round(stats.seconds, 2),
            "trials_per_min": round(stats.trials_per_min, 2)}
    summary_path = out / f"{plan.name}_summary.json"
    write_json(summary_path, summary)
    if best:
        files += [Path(best["yaml"]), out / f"{plan.name}_best_command.txt"]
    tracker.close(status, [*files, summary_path], {
        "wall_seconds": seconds, **({"best_value_final": best["value"]} if best else {})})
    return summary


def _say_how_it_went(summary: dict[str, Any], plan: _Plan, report: bool, echo: Echo) -> None:
    counts, best = summary["trials"], summary["best_export"]
    echo(f"study {plan.name}: {counts['complete']} complete, {counts['pruned']} pruned, "
         f"{counts['fail']} failed; this worker {summary['this_worker']['trials_per_min']} "
         "trials/min")
    short = plan.n_trials - counts["complete"] - counts["pruned"]
    if short > 0:
        echo(f"the study is {short} finished trial(s) short of {plan.n_trials} (failed trials, "
             "or a trial still running elsewhere); rerun the same command to top it up")
    if best:
        echo(f"best trial {best['trial']}: validation score {best['value']:.4f} -> {best['yaml']}")
        echo(best["command"])
    elif not report:
        echo("--no-report: plots and best parameters left to another worker")
    else:
        echo("no completed trial yet: nothing to export")


def tune(settings: Settings, *, target: str, data: TuneData, study_name: str | None = None,
         n_trials: int | None = None, storage: str | None = None,
         out_dir: str | Path = "reports/tuning", splits: int = 2,
         objective: Objective | None = None, report: bool = True,
         echo: Echo = print, engine: str | None = None, workers: int = 0) -> dict[str, Any]:
    """Create or resume a study and work on it until it has ``n_trials`` finished trials.

    ``engine`` (default ``compute.engine``): ``local`` works in this process; ``ray`` runs
    ``workers`` Optuna workers as Ray tasks (0: one per CPU, or GPU, of the cluster), this
    process waiting and then reporting (their numbers summed under ``this_worker``).
    ``objective`` replaces the real one (tests); it must suggest the target's parameter names
    (and be picklable for the ray engine).
    ``report=False`` skips the plots and the best-params export (extra workers of a study).
    Returns the summary also written to ``<out_dir>/<study>_summary.json``; the results are
    written (and the study run closed) even when the work stops early.
    """
    if engine not in (None, "local", "ray"):
        raise DeepFNError(f"--engine {engine!r}: allowed: local, ray")
    plan = _plan(settings, target, study_name, n_trials, storage)
    study = _open_study(settings, plan)
    echo(f"study {plan.name} ({target}) on {plan.label}: {plan.n_trials} finished trials wanted")
    obj, close = _pick_objective(settings, plan, data, splits, objective)
    tracker = _open_study_run(settings, plan, data, obj)
    status, stats, t0 = "FAILED", None, time.perf_counter()
    try:
        if (engine or settings.compute.engine) == "ray":
            stats = _work_on_ray(settings, plan, data, splits, objective, tracker, workers)
        else:
            stats = _work(study, plan, obj, tracker)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        close()
        summary = _write_results(study, plan, Path(out_dir), report, status, stats, tracker,
                                 time.perf_counter() - t0)
    _say_how_it_went(summary, plan, report, echo)
    return summary


def run_tune(settings: Settings, *, original: str | Path, template: str | Path,
             out: str | Path, normalized: str | Path | None = None,
             ae: str | Path | None = None, echo: Echo = print) -> dict[str, Any]:
    """The ``tune`` stage: a study of ``tune.target`` when ``tune.enabled``, else a no-op.

    Either way ``<out>/status.json`` says what happened (DVC tracks ``out``); returns it.
    """
    from deepfn.utils.io import write_json

    t, out = settings.tune, Path(out)
    if not t.enabled:
        status: dict[str, Any] = {
            "enabled": False, "target": t.target, "study": t.study,
            "reason": f"tune.enabled is false; set it true (or run `deepfn tune {t.target}`) "
                      "to run the study"}
    else:
        data = TuneData(original=Path(original), template=Path(template),
                        normalized=Path(normalized) if normalized else None,
                        ae=Path(ae) if ae else None)
        summary = tune(settings, target=t.target, data=data, out_dir=out, echo=echo)
        status = {"enabled": True, "target": t.target, "study": summary["study"],
                  "trials": summary["trials"], "best": summary["best"],
                  "best_export": summary["best_export"]}
    write_json(out / "status.json", status)
    return status


def _stage(s: Settings, progress: bool, *, original: Path, template: Path, out: Path,
           normalized: Path | None = None, ae: Path | None = None) -> str:
    status = run_tune(s, original=original, template=template, out=out,
                      normalized=normalized, ae=ae)
    path = Path(out) / "status.json"
    if not status["enabled"]:
        return f"disabled (tune.enabled: false) -> {path}"
    t = status["trials"]
    return (f"study {status['study']} ({status['target']}): {t['complete']} complete, "
            f"{t['pruned']} pruned, {t['fail']} failed -> {path}")


# `pipelines/tune.py` and `deepfn tune` run it through deepfn.stage.run_stage
TUNE = Stage("tune", _stage)
