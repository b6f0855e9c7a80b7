"""The ``experiments`` stage: every condition of paper Table 5, on original and DeepFN data.

    python pipelines/experiments.py --original data/preprocessed/clf \\
        --normalized data/normalized --template data/template/template.json \\
        --out results/experiments.json [--params params.yaml]

Story of :func:`run_experiments`: read the template id and the subjects table; plan every model
(:func:`deepfn.au.protocol.plan_models`, pools checked before any training); check both corpora
hold every planned subject; compute each evaluation's ``run_key``; skip what MLflow already has
FINISHED, mark stale RUNNING runs KILLED; train the rest with the configured strategy
(:mod:`deepfn.au.strategies`) while this process logs each result as it arrives
(:mod:`deepfn.au.runs`); write the manifest of all runs atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepfn import tracking
from deepfn.au.protocol import Evaluation, ModelPlan, plan_models
from deepfn.au.runs import (
    condition_tags,
    finish_parents,
    get_or_create_parents,
    kill_stale_runs,
    log_evaluation,
)
from deepfn.au.strategies import make_strategy
from deepfn.au.trainer import (
    JobResult,
    TrainConfig,
    TrainJob,
    count_train_frames,
    should_compile,
    subject_tensors,
)
from deepfn.config.settings import ExperimentsSettings, Settings
from deepfn.data.corpus import data_version, read_manifest, read_subjects
from deepfn.errors import DeepFNError
from deepfn.tracking import names
from deepfn.utils.io import write_json

__all__ = ["run_experiments", "read_template", "RESULT_PARAMS", "result_params", "train_budget"]

log = logging.getLogger(__name__)

# The settings that change a run's numbers (and so its run_key).  Left out on purpose:
# strategy/workers (results do not depend on them), repetitions/groups/normalizations (they
# add or drop runs, never change one) and min_test (a check only).
RESULT_PARAMS = ("epochs", "equal_steps", "match_frames", "batch_size", "lr", "beta1", "beta2",
                 "weight_decay", "n_train", "n_val", "threshold", "precision", "seed")


def result_params(exp: ExperimentsSettings) -> dict[str, Any]:
    return {k: getattr(exp, k) for k in RESULT_PARAMS}


def train_budget(exp: ExperimentsSettings, n_train_subjects: int) -> tuple[int, int]:
    """``(epochs, frame stride)`` of a model trained on ``n_train_subjects`` subjects.

    ``experiments.epochs`` is the budget of a model on ``n_train`` subjects.  With
    ``equal_steps`` (the default) a model on fewer subjects -- a person-dependent model trains
    on one -- runs ``n_train / n_train_subjects`` times as many epochs, so every model takes
    about the same number of Adam steps; otherwise a dependent model would get a quarter of
    the optimisation of an independent one and the gap would measure training time, not
    identity (benchmarks/negative_control.py, docs/protocol.md).  With ``match_frames`` every
    model trains on one subject's worth of frames instead (every ``n_train_subjects``-th train
    frame of each subject), so the epochs stay as they are.
    """
    if exp.match_frames:
        return exp.epochs, max(n_train_subjects, 1)
    if not exp.equal_steps or n_train_subjects >= exp.n_train:
        return exp.epochs, 1
    return exp.epochs * max(1, round(exp.n_train / max(n_train_subjects, 1))), 1


def read_template(path: str | Path) -> str:
    """The template subject id from ``template.json`` (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise DeepFNError(f"{path}: template file not found; run the template stage "
                          "(dvc repro template)")
    try:
        subject = json.loads(path.read_text()).get("subject")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise DeepFNError(f"{path}: not a JSON object; rerun the template stage") from exc
    if not isinstance(subject, str) or not subject:
        raise DeepFNError(f"{path}: no \"subject\" key; rerun the template stage")
    return subject


def _check_corpora(original: Path, normalized: Path, subjects: set[str]) -> None:
    """Both corpora hold every planned subject, at one resolution."""
    sizes = {}
    for corpus, hint in ((original, "rerun the preprocess stage (dvc repro preprocess)"),
                         (normalized, "run the transfer stage (dvc repro transfer)")):
        if not (corpus / "manifest.json").is_file():
            raise DeepFNError(f"{corpus / 'manifest.json'}: corpus manifest not found; {hint}")
        for s in sorted(subjects):
            if not (corpus / f"{s}.npz").is_file():
                raise DeepFNError(f"{corpus / f'{s}.npz'}: subject {s} is missing; {hint}")
        sizes[corpus] = int(read_manifest(corpus)["image_size"])
    if sizes[original] != sizes[normalized]:
        raise DeepFNError(f"{normalized}: image size {sizes[normalized]} differs from "
                          f"{original} ({sizes[original]}); run the transfer stage "
                          "(dvc repro transfer)")


@dataclass(frozen=True)
class _Model:
    plan: ModelPlan
    model_key: str
    run_keys: tuple[str, ...]  # one per plan.evaluations


def _plan(exp: ExperimentsSettings, original: Path, normalized: Path, template: str,
          template_json: Path) -> tuple[list[_Model], set[str], str]:
    """Models with their keys, the subjects they use and the combined data version."""
    subjects = read_subjects(original / "subjects.csv")
    if template not in subjects.index:
        raise DeepFNError(f"{template_json}: template subject {template} is not in "
                          f"{original / 'subjects.csv'}; rerun the template stage")
    plans = plan_models(subjects, template, exp)
    used = {s for p in plans for ev in p.evaluations
            for s in ev.train_subjects + ev.val_subjects + ev.test_subjects}
    _check_corpora(original, normalized, used)
    dv = f"{data_version(original)}+{data_version(normalized)}"
    rp = result_params(exp)
    models = [_Model(p, tracking.run_key(model=p.name, data_version=dv, params=rp),
                     tuple(tracking.run_key(**ev.fields(), data_version=dv, params=rp)
                           for ev in p.evaluations)) for p in plans]
    return models, used, dv


def _run_name(ev: Evaluation) -> str:
    who = ev.test_subjects[0] if ev.evaluation == "dependent" and ev.group == "person" else ""
    return f"{ev.condition}/r{ev.repetition}" + (f"/{who}" if who else "")


def _conditions(models: list[_Model], dv: str, exp: ExperimentsSettings
                ) -> dict[str, dict[str, str]]:
    """Parent-run tags per condition name (with the condition's own ``run_key``)."""
    out: dict[str, dict[str, str]] = {}
    for m in models:
        for ev in m.plan.evaluations:
            if ev.condition not in out:
                key = tracking.run_key(condition=ev.condition, data_version=dv,
                                       params=result_params(exp))
                out[ev.condition] = {**condition_tags(ev), names.TAG_RUN_KEY: key}
    return out


@contextmanager
def _progress(enabled: bool, label: str, total: int) -> Iterator[Callable[[float], None]]:
    """A rich progress bar (models done / total, training img/s); yields ``tick(rate)``."""
    if not enabled:
        yield lambda rate: None
        return
    with Progress(TextColumn(f"experiments [{label}]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("models {task.fields[rate]}"), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        task = bar.add_task("train", total=total, rate="")
        yield lambda rate: bar.update(task, advance=1, rate=f"{rate:,.0f} img/s")


def _manifest(models: list[_Model], finished: dict[str, str], **head: Any) -> dict:
    """The manifest: ``head`` fields, one entry per run, counts per condition."""
    runs = []
    for m in models:
        for ev, key in zip(m.plan.evaluations, m.run_keys, strict=True):
            if key not in finished:  # cannot happen unless the store changed under us
                raise DeepFNError(f"run {key} ({ev.condition}) was not logged; rerun the stage")
            runs.append({"run_id": finished[key], "run_key": key, "group": ev.group,
                         "evaluation": ev.evaluation, "train_group": ev.train_group,
                         "test_group": ev.test_group, "normalization": ev.normalization,
                         "repetition": ev.repetition, "split_seed": ev.split_seed})
    conditions = Counter(ev.condition for m in models for ev in m.plan.evaluations)
    counts = {"models": len(models), "runs": len(runs),
              "conditions": dict(sorted(conditions.items()))}
    return {"experiment": tracking.EXPERIMENT_AU, **head, "runs": runs, "counts": counts}


def run_experiments(settings: Settings, original_dir: str | Path, normalized_dir: str | Path,
                    template_json: str | Path, out: str | Path, uri: str | None = None, *,
                    progress: bool = True) -> dict:
    """Run (or resume) every experiment, write the manifest ``out`` and return it.

    With the ``process`` strategy workers are spawned: call this from a script guarded by
    ``if __name__ == "__main__":`` (as ``pipelines/experiments.py`` is).  ``uri``: the tracking
    store, before ``MLFLOW_TRACKING_URI`` and ``tracking.uri`` (:class:`deepfn.tracking.Store`).
    """
    exp = settings.experiments
    original, normalized = Path(original_dir), Path(normalized_dir)
    template = read_template(template_json)
    models, used, dv = _plan(exp, original, normalized, template, Path(template_json))

    # -- MLflow: what is already done, stale runs, parent runs -------------------------------
    store = tracking.Store(uri, configured=settings.tracking.uri)
    au_exp = tracking.EXPERIMENT_AU
    kill_stale_runs(store, au_exp, {k for m in models for k in m.run_keys})
    finished = store.finished_by_key(au_exp, f"tags.{names.TAG_KIND} = '{names.KIND_MODEL}'")
    todo = [m for m in models if any(k not in finished for k in m.run_keys)]
    common = tracking.common_tags(stage="experiments", profile=settings.profile,
                                  data_version=dv)
    params = tracking.flatten_params(exp.model_dump(), "experiments.")
    parents = get_or_create_parents(store, au_exp, _conditions(models, dv, exp), common, params)

    # -- jobs: largest first (a shorter tail in the pool; results do not depend on order) -----
    corpus = {"original": str(original), "deepfn": str(normalized)}
    subject_tensors.cache_clear()  # files may have changed since an earlier call here
    frames = {(n, s): count_train_frames(d, s) for n, d in corpus.items() for s in used}
    budget = {m.model_key: train_budget(exp, len(m.plan.train)) for m in todo}
    images = {m.model_key: budget[m.model_key][0] * sum(frames[m.plan.normalization, s]
                                                        for s in m.plan.train)
              // budget[m.model_key][1] for m in todo}
    strategy = make_strategy(exp.strategy, exp.workers, len(todo), sum(images.values()))
    cfg = TrainConfig.from_settings(
        exp, compile=should_compile(sum(images.values()) / strategy.workers))
    jobs = [TrainJob(m.model_key, corpus[m.plan.normalization], m.plan.train, m.plan.val,
                     tuple((ev.test_group, ev.test_subjects) for ev in m.plan.evaluations),
                     m.plan.aus, m.plan.seed, replace(cfg, epochs=budget[m.model_key][0],
                                                          train_stride=budget[m.model_key][1]))
            for m in sorted(todo, key=lambda m: -images[m.model_key])]

    # -- train; this process logs each result as it arrives ----------------------------------
    by_key = {m.model_key: m for m in todo}
    stats: Counter[str] = Counter()
    no_pos: Counter[str] = Counter()  # AU -> models without a positive training label for it
    t0 = time.perf_counter()

    def on_result(res: JobResult) -> None:
        m = by_key[res.key]
        for ev, key in zip(m.plan.evaluations, m.run_keys, strict=True):
            if key not in finished:
                tags = {**common, names.TAG_MODEL_KEY: m.model_key, names.TAG_RUN_KEY: key}
                finished[key] = log_evaluation(
                    store, au_exp, parent_id=parents[ev.condition], run_name=_run_name(ev), ev=ev,
                    result=res, test_group=ev.test_group, tags=tags, params=params)
                stats["runs_logged"] += 1
        stats["models_trained"] += 1
        stats["images"] += res.images
        stats["models_without_positives"] += bool(res.aus_without_positives)
        no_pos.update(res.aus_without_positives)
        tick(stats["images"] / max(time.perf_counter() - t0, 1e-9))

    try:
        with _progress(progress and bool(jobs), strategy.name, len(jobs)) as tick:
            strategy.run(jobs, on_result)
    except BaseException as exc:
        finish_parents(store, parents, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finish_parents(store, parents)
    seconds = time.perf_counter() - t0
    if no_pos:
        log.warning("%d model(s) had AUs without positive training labels (%s); their F1 is 0 "
                    "unless never predicted -- see metric n_aus_without_positives",
                    stats["models_without_positives"],
                    ", ".join(f"{au} x{n}" for au, n in sorted(no_pos.items())))
    if stats["images"]:
        log.info("trained %d models, %d images in %.1f s (%.0f img/s, %s%s)",
                 stats["models_trained"], stats["images"], seconds, stats["images"] / seconds,
                 strategy.name, ", compiled" if cfg.compile else "")

    manifest = _manifest(models, finished, tracking_uri=store.uri, data_version=dv,
                         template=template)
    manifest["counts"].update(models_trained=stats["models_trained"],
                              runs_logged=stats["runs_logged"],
                              runs_skipped=manifest["counts"]["runs"] - stats["runs_logged"])
    write_json(out, manifest)
    return manifest
