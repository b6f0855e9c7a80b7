"""The ``experiments`` stage: every condition of paper Table 5, for every normalization method.

    python -m pipelines.experiments --original data/preprocessed/clf \\
        --normalized data/normalized --template data/template/template.json \\
        --out results/experiments.json [--params params.yaml]

:func:`run_experiments` in five steps:

1. :func:`plan` -- every model (:func:`deepfn.au.protocol.plan_models`, pools checked before any
   training) for every method of ``experiments.normalizations`` (``original`` reads
   ``--original``, any other method ``<--normalized>/<method>``, written by ``transfer``), each
   corpus checked to hold every planned subject, and each evaluation's ``run_key``: the
   evaluation's fields (the method among them), the content hashes of the original corpus and
   of the method's own corpus, and
   :func:`deepfn.tracking.provenance.key_parts` (the stage's code fingerprint and every
   ``experiments`` setting that can change a number).
2. :func:`resume` -- what MLflow already has FINISHED under those keys (skipped), stale RUNNING
   runs marked KILLED, the condition (parent) runs found or created.
3. :func:`build_jobs` -- one training job per model with an unfinished evaluation, largest first,
   and the strategy (:mod:`deepfn.au.strategies`) to run them.
4. :func:`train_and_log` -- run the jobs while this process logs each result as it arrives
   (:mod:`deepfn.au.runs`).
5. :func:`write_manifest` -- every run of the plan, atomically.

Unchanged code and settings find every run again (nothing trains); an edit to any module the
stage runs keys new runs; reverting it finds the earlier ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deepfn import tracking
from deepfn.au.protocol import (
    Evaluation,
    ModelPlan,
    cross_person_parts,
    model_parts,
    plan_models,
)
from deepfn.au.runs import (
    condition_tags,
    finish_parents,
    get_or_create_parents,
    kill_stale_runs,
    log_evaluation,
)
from deepfn.au.strategies import Strategy, make_strategy
from deepfn.au.trainer import (
    ClassifierTrainConfig,
    JobResult,
    TrainJob,
    count_train_frames,
    should_compile,
)
from deepfn.compute.device import resolve_compute
from deepfn.config.settings import ExperimentsSettings, Settings
from deepfn.data.corpus import data_version, read_manifest, read_subjects
from deepfn.errors import DeepFNError
from deepfn.tracking import names
from deepfn.tracking.provenance import fingerprint_tags, key_parts
from deepfn.utils.io import write_json

if TYPE_CHECKING:
    from deepfn.compute.engine import RayCluster

__all__ = ["run_experiments", "read_template", "train_budget", "plan", "resume", "build_jobs",
           "train_and_log", "write_manifest", "Plan", "Resumed", "Jobs"]

log = logging.getLogger(__name__)
STAGE = "experiments"
AU = tracking.EXPERIMENT_AU


def train_budget(exp: ExperimentsSettings, n_train_subjects: int,
                 frame_ratio: float = 1.0) -> tuple[int, int]:
    """``(epochs, frame stride)`` of a model trained on ``n_train_subjects`` subjects.

    ``experiments.epochs`` is the budget of a cross-person model on ``n_train`` subjects.  With
    ``equal_steps`` (the default) a model on fewer frames -- a person-dependent model trains on
    one subject's train part -- runs ``n_train / n_train_subjects * frame_ratio`` times as
    many epochs (rounded), where ``frame_ratio`` is the frames a cross-person model reads of a
    subject over the frames this model reads (1 with ``subject_frames: parts``; whole subject
    over train part with ``whole``), so every model takes about the same number of Adam steps;
    otherwise a dependent model would get a fraction of the optimisation of an independent one
    and the gap would measure training time, not identity (research/negative_control.py,
    docs/protocol.md).  With ``match_frames`` every model trains on one subject's worth of
    frames instead (every ``n_train_subjects``-th train frame of each subject), so the epochs
    stay as they are.
    """
    if exp.match_frames:
        return exp.epochs, max(n_train_subjects, 1)
    scale = exp.n_train / max(n_train_subjects, 1) * frame_ratio
    if not exp.equal_steps or scale <= 1.0:
        return exp.epochs, 1
    return max(exp.epochs, round(exp.epochs * scale)), 1


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


def _corpora(original: Path, normalized: Path, methods: tuple[str, ...]) -> dict[str, Path]:
    """method -> corpus directory: ``original`` itself, every other method
    ``<normalized>/<method>`` (:func:`deepfn.normalizer.methods.method_dir`)."""
    return {m: original if m == "original" else normalized / m for m in methods}


def _check_corpora(corpora: dict[str, Path], subjects: set[str]) -> None:
    """Every listed method's corpus holds every planned subject, all at one resolution."""
    sizes = {}
    for method, corpus in corpora.items():
        hint = ("rerun the preprocess stage (dvc repro preprocess)" if method == "original"
                else f"run the transfer stage (dvc repro transfer), which writes {method}")
        if not (corpus / "manifest.json").is_file():
            raise DeepFNError(f"{corpus / 'manifest.json'}: corpus manifest not found; {hint}")
        for s in sorted(subjects):
            if not (corpus / f"{s}.npz").is_file():
                raise DeepFNError(f"{corpus / f'{s}.npz'}: subject {s} is missing; {hint}")
        sizes[method] = int(read_manifest(corpus)["image_size"])
    first = next(iter(corpora))
    for method, size in sizes.items():
        if size != sizes[first]:
            raise DeepFNError(f"{corpora[method]}: image size {size} differs from "
                              f"{corpora[first]} ({sizes[first]}); run the transfer stage "
                              "(dvc repro transfer)")


@dataclass(frozen=True)
class _Model:
    plan: ModelPlan
    model_key: str
    run_keys: tuple[str, ...]  # one per plan.evaluations


@dataclass(frozen=True)
class Plan:
    """Step 1: the models with their keys and what they read."""

    models: list[_Model]
    corpus: dict[str, str]  # normalization -> corpus directory
    used: set[str]  # subjects any model trains, selects or tests on
    data_version: str  # every listed method's corpus content hash, in order
    template: str
    key: dict[str, Any]  # provenance.key_parts: code fingerprint + result settings
    versions: dict[str, str] = field(default_factory=dict)  # method -> data version in its keys

    @property
    def run_keys(self) -> set[str]:
        return {k for m in self.models for k in m.run_keys}


@dataclass
class Resumed:
    """Step 2: the MLflow side -- where runs go and which are already FINISHED."""

    store: tracking.Store
    finished: dict[str, str]  # run_key -> run_id; grows as new runs are logged
    parents: dict[str, str]  # condition -> parent run id
    tags: dict[str, str]  # common tags of every run of this stage
    params: dict[str, str]


@dataclass
class Jobs:
    """Step 3: what is left to train and how."""

    todo: list[_Model]
    jobs: list[TrainJob]
    strategy: Strategy
    compiled: bool
    counts: Counter[str] = field(default_factory=Counter)  # filled by train_and_log


def plan(settings: Settings, original: Path, normalized: Path, template_json: Path,
         device: str) -> Plan:
    """Plan every model and key its evaluations for ``device`` (no MLflow, no training)."""
    exp = settings.experiments
    template = read_template(template_json)
    subjects = read_subjects(original / "subjects.csv")
    if template not in subjects.index:
        raise DeepFNError(f"{template_json}: template subject {template} is not in "
                          f"{original / 'subjects.csv'}; rerun the template stage")
    plans = plan_models(subjects, template, exp)
    used = {s for p in plans for ev in p.evaluations
            for s in ev.train_subjects + ev.val_subjects + ev.test_subjects}
    corpora = _corpora(original, normalized, exp.normalizations)
    _check_corpora(corpora, used)
    # A run is keyed by the corpus it reads (and the original one, as before baselines existed):
    # a new baseline corpus never rekeys DeepFN's runs, and the method is in every key (the
    # evaluation's fields and the model name both carry it).
    versions = {m: data_version(d) for m, d in corpora.items()}
    orig = versions.get("original") or data_version(original)
    dv = {m: orig if m == "original" else f"{orig}+{v}" for m, v in versions.items()}
    key = key_parts(settings, STAGE, device)
    models = [_Model(p, tracking.run_key(model=p.name, data_version=dv[p.normalization], **key),
                     tuple(tracking.run_key(**ev.fields(), data_version=dv[p.normalization],
                                            **key) for ev in p.evaluations)) for p in plans]
    return Plan(models, {m: str(d) for m, d in corpora.items()}, used,
                "+".join(versions[m] for m in corpora), template, key, dv)


def _run_name(ev: Evaluation) -> str:
    who = ev.test_subjects[0] if ev.evaluation == "dependent" and ev.group == "person" else ""
    return f"{ev.condition}/r{ev.repetition}" + (f"/{who}" if who else "")


def _conditions(p: Plan) -> dict[str, dict[str, str]]:
    """Parent-run tags per condition name (with the condition's own ``run_key``)."""
    out: dict[str, dict[str, str]] = {}
    for m in p.models:
        for ev in m.plan.evaluations:
            if ev.condition not in out:
                key = tracking.run_key(
                    condition=ev.condition,
                    data_version=p.versions.get(ev.normalization, p.data_version), **p.key)
                out[ev.condition] = {**condition_tags(ev), names.TAG_RUN_KEY: key}
    return out


def resume(p: Plan, settings: Settings, uri: str | None = None) -> Resumed:
    """Find what is FINISHED, mark stale RUNNING runs KILLED, get the condition runs.  ``uri``
    goes before ``MLFLOW_TRACKING_URI`` and ``tracking.uri`` (:class:`deepfn.tracking.Store`)."""
    store = tracking.Store(uri, configured=settings.tracking.uri)
    kill_stale_runs(store, AU, p.run_keys)
    finished = store.finished_by_key(AU, f"tags.{names.TAG_KIND} = '{names.KIND_MODEL}'")
    tags = {**tracking.common_tags(stage=STAGE, profile=settings.profile,
                                   data_version=p.data_version), **fingerprint_tags(STAGE)}
    params = tracking.flatten_params(settings.experiments.model_dump(), "experiments.")
    parents = get_or_create_parents(store, AU, _conditions(p), tags, params)
    return Resumed(store, finished, parents, tags, params)


def build_jobs(p: Plan, resumed: Resumed, exp: ExperimentsSettings, device: str,
               cluster: RayCluster | None = None) -> Jobs:
    """One job per model with an unfinished evaluation, largest first (a shorter tail in a
    pool; results do not depend on order), and the strategy that runs them on ``device``
    (resolved ``compute.device``) -- as Ray tasks on ``cluster`` when one is given."""
    todo = [m for m in p.models if any(k not in resumed.finished for k in m.run_keys)]
    parts = {m.model_key: model_parts(m.plan, exp.subject_frames) for m in todo}
    cross = cross_person_parts(exp.subject_frames)[0]  # what a cross-person model trains on
    needed = {(m.plan.normalization, s, ps) for m in todo for s in m.plan.train
              for ps in {parts[m.model_key][0], cross}}
    frames = {(n, s, ps): count_train_frames(p.corpus[n], s, ps) for n, s, ps in needed}

    def ratio(m: _Model) -> float:  # frames per subject of a cross-person model / this one's
        own = parts[m.model_key][0]
        return sum(frames[m.plan.normalization, s, cross] for s in m.plan.train) / max(
            1, sum(frames[m.plan.normalization, s, own] for s in m.plan.train))

    budget = {m.model_key: train_budget(exp, len(m.plan.train), ratio(m)) for m in todo}
    images = {m.model_key: budget[m.model_key][0] * sum(
        frames[m.plan.normalization, s, parts[m.model_key][0]] for s in m.plan.train)
        // budget[m.model_key][1] for m in todo}
    strategy = make_strategy(exp.strategy, exp.workers, len(todo), sum(images.values()),
                             device=device, cluster=cluster)
    cfg = ClassifierTrainConfig.from_settings(
        exp, compile=should_compile(sum(images.values()) / strategy.workers)
        and strategy.name != "ensemble", device=device)
    jobs = [TrainJob(m.model_key, p.corpus[m.plan.normalization], m.plan.train, m.plan.val,
                     tuple((ev.test_group, ev.test_subjects) for ev in m.plan.evaluations),
                     m.plan.aus, m.plan.seed, replace(cfg, epochs=budget[m.model_key][0],
                                                          train_stride=budget[m.model_key][1]),
                     *parts[m.model_key])
            for m in sorted(todo, key=lambda m: -images[m.model_key])]
    return Jobs(todo, jobs, strategy, cfg.compile)


def train_and_log(resumed: Resumed, work: Jobs, *, progress: bool = True) -> Counter[str]:
    """Train ``work``'s jobs; this process logs each result as it arrives (``resumed.finished``
    grows).  The condition runs end FINISHED, or FAILED/KILLED with the error."""
    by_key = {m.model_key: m for m in work.todo}
    counts = work.counts
    no_pos: Counter[str] = Counter()  # AU -> models without a positive training label for it
    t0 = time.perf_counter()

    def on_result(res: JobResult) -> None:
        m = by_key[res.key]
        for ev, key in zip(m.plan.evaluations, m.run_keys, strict=True):
            if key not in resumed.finished:
                tags = {**resumed.tags, names.TAG_MODEL_KEY: m.model_key,
                        names.TAG_RUN_KEY: key}
                resumed.finished[key] = log_evaluation(
                    resumed.store, AU, parent_id=resumed.parents[ev.condition],
                    run_name=_run_name(ev), ev=ev, result=res, test_group=ev.test_group,
                    tags=tags, params=resumed.params)
                counts["runs_logged"] += 1
        counts["models_trained"] += 1
        counts["images"] += res.images
        counts["models_without_positives"] += bool(res.aus_without_positives)
        no_pos.update(res.aus_without_positives)
        tick(counts["images"] / max(time.perf_counter() - t0, 1e-9))

    try:
        with _progress(progress and bool(work.jobs), work.strategy.name, len(work.jobs)) as tick:
            work.strategy.run(work.jobs, on_result)
    except BaseException as exc:
        finish_parents(resumed.store, resumed.parents,
                       "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finish_parents(resumed.store, resumed.parents)
    _log_summary(counts, no_pos, time.perf_counter() - t0, work)
    return counts


def _log_summary(counts: Counter[str], no_pos: Counter[str], seconds: float, work: Jobs) -> None:
    if no_pos:
        log.warning("%d model(s) had AUs without positive training labels (%s); their F1 is 0 "
                    "unless never predicted -- see metric n_aus_without_positives",
                    counts["models_without_positives"],
                    ", ".join(f"{au} x{n}" for au, n in sorted(no_pos.items())))
    if counts["images"]:
        log.info("trained %d models, %d images in %.1f s (%.0f img/s, %s%s)",
                 counts["models_trained"], counts["images"], seconds, counts["images"] / seconds,
                 work.strategy.name, ", compiled" if work.compiled else "")


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


def write_manifest(out: str | Path, p: Plan, resumed: Resumed, counts: Counter[str]
                   ) -> dict[str, Any]:
    """Write (atomically) the manifest -- one entry per run, counts per condition: a function of
    the plan and its runs only, so finding the same runs again writes the same file -- and return
    it with this call's counts added (``models_trained``, ``runs_logged``, ``runs_skipped``)."""
    runs = []
    for m in p.models:
        for ev, key in zip(m.plan.evaluations, m.run_keys, strict=True):
            if key not in resumed.finished:  # cannot happen unless the store changed under us
                raise DeepFNError(f"run {key} ({ev.condition}) was not logged; rerun the stage")
            runs.append({"run_id": resumed.finished[key], "run_key": key, "group": ev.group,
                         "evaluation": ev.evaluation, "train_group": ev.train_group,
                         "test_group": ev.test_group, "normalization": ev.normalization,
                         "repetition": ev.repetition, "split_seed": ev.split_seed})
    conditions = Counter(ev.condition for m in p.models for ev in m.plan.evaluations)
    manifest: dict[str, Any] = {
        "experiment": tracking.EXPERIMENT_AU, "tracking_uri": resumed.store.uri,
        "data_version": p.data_version, "template": p.template, "runs": runs,
        "counts": {"models": len(p.models), "runs": len(runs),
                   "conditions": dict(sorted(conditions.items()))}}
    write_json(out, manifest)
    return {**manifest, "counts": {**manifest["counts"],
                                   "models_trained": counts["models_trained"],
                                   "runs_logged": counts["runs_logged"],
                                   "runs_skipped": len(runs) - counts["runs_logged"]}}


def run_experiments(settings: Settings, original_dir: str | Path, normalized_dir: str | Path,
                    template_json: str | Path, out: str | Path, uri: str | None = None, *,
                    progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every experiment, write the manifest ``out`` and return it.

    With the ``process`` strategy workers are spawned: call this from a script guarded by
    ``if __name__ == "__main__":`` (as ``pipelines/experiments.py`` is).  With ``compute.engine:
    ray`` the jobs run as Ray tasks (:mod:`deepfn.au.ray_jobs`); this process still logs every
    run.  ``uri``: the tracking store, before ``MLFLOW_TRACKING_URI`` and ``tracking.uri``
    (:class:`deepfn.tracking.Store`).
    """
    with _engine(settings) as (device, cluster):
        p = plan(settings, Path(original_dir), Path(normalized_dir), Path(template_json), device)
        resumed = resume(p, settings, uri)
        work = build_jobs(p, resumed, settings.experiments, device, cluster)
        counts = train_and_log(resumed, work, progress=progress)
    return write_manifest(out, p, resumed, counts)


@contextmanager
def _engine(settings: Settings) -> Iterator[tuple[str, RayCluster | None]]:
    """The device the jobs compute on, resolved once, and the Ray cluster with ``compute.engine:
    ray`` (connected for the block; its tasks' device, :func:`deepfn.au.ray_jobs.cluster_device`)
    or None (this machine's device)."""
    if settings.compute.engine == "ray":
        from deepfn.au.ray_jobs import cluster_device
        from deepfn.compute.engine import ray_session

        with ray_session(settings.compute.address) as cluster:
            yield cluster_device(settings.compute.device, cluster), cluster
        return
    compute = resolve_compute(settings.compute.device, settings.experiments.precision)
    compute.configure()
    yield str(compute.device), None
