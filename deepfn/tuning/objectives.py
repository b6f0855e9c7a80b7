"""The two objectives: validation score of LeNet-5 models, never touching test data.

Both maximize the paper's score -- per AU the mean of F1 and accuracy at ``experiments.threshold``,
averaged over AUs per participant, then over participants (:mod:`deepfn.au.metrics`) -- computed
on the **validation** frames (T6) of the **validation** subjects of the experiments protocol's
own splits (:func:`deepfn.au.protocol.plan_models`, same seeds), trained on the train frames
(T1-T5) of the train subjects with :func:`deepfn.au.trainer.train_job`.

No test data can be read: each objective works on a *validation view* of the corpus (a temporary
corpus holding only the train and validation subjects of its splits, and of those only the
train and validation frames).  The trainer scores its "test" part, so in the view the
validation frames are also exposed as the test part (sequence ``T7``): the score the trainer
computes for the best-validation-F1 epoch is then the validation score.

* classifier: the person-independent model of the first ``splits`` repetitions, for the
  original corpus and (if present) the DeepFN-normalized one; reported after each model
  (``step`` = models done, value = mean score so far) so the pruner can stop a trial early.
* normalizer: a cheap downstream proxy -- train the trial's autoencoders for the train and
  validation subjects of repetition 0 (on their train+validation frames only), normalize those
  frames (Eq. 2) to the classifier resolution, then the validation score of one LeNet-5 on
  them; after each subject its clean reconstruction error is reported (``-L1``) for pruning.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from deepfn.config.settings import Settings
from deepfn.data.corpus import (
    SubjectData,
    read_manifest,
    read_subject,
    read_subjects,
    write_manifest,
    write_subject,
    write_subjects,
)
from deepfn.errors import DeepFNError
from deepfn.tuning.space import suggest_classifier, suggest_normalizer, warm_start_overrides

__all__ = ["TuneData", "Reporter", "template_subject", "tuning_plans", "train_val_frames",
           "write_validation_view",
           "ClassifierObjective", "NormalizerObjective", "build_objective"]


@dataclass(frozen=True)
class TuneData:
    """Inputs: classifier-resolution corpus, normalized corpus (optional), template, AE corpus."""

    original: Path
    template: Path
    normalized: Path | None = None
    ae: Path | None = None  # default: <original>/../ae

    @property
    def template_dir(self) -> Path:
        return self.template.parent if self.template.suffix == ".json" else self.template

    @property
    def ae_dir(self) -> Path:
        return self.ae or self.original.parent / "ae"


class Reporter:
    """Intermediate scores -> Optuna (pruning) and the trial's MLflow run (``val_score``)."""

    def __init__(self, trial: optuna.Trial) -> None:
        from deepfn.tuning.report import active_trial_run

        self.trial, self.run = trial, active_trial_run()

    def params(self, params: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.log_params(params)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        if self.run is not None:
            self.run.log_metric(name, float(value), step=step or 0)

    def report(self, step: int, value: float, name: str = "val_score") -> None:
        self.trial.report(float(value), step)
        self.metric(name, value, step)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({name} {value:.4f})")


def template_subject(template: Path) -> str:
    path = template if template.suffix == ".json" else template / "template.json"
    try:
        return str(json.loads(path.read_text())["subject"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeepFNError(f"{path}: no template subject in it; run the template stage first "
                          "(dvc repro template)") from exc


def tuning_plans(corpus: Path, template: str, settings: Settings, splits: int,
                 normalizations: Sequence[str]) -> list[Any]:
    """The person-independent :class:`~deepfn.au.protocol.ModelPlan` of repetitions
    ``0..splits-1`` -- exactly the experiments' splits and model seeds."""
    from deepfn.au.protocol import plan_models

    exp = settings.experiments.model_copy(update={
        "groups": ("person",), "repetitions": max(1, splits),
        "normalizations": tuple(normalizations)})
    plans = plan_models(read_subjects(corpus / "subjects.csv"), template, exp)
    return [p for p in plans if p.evaluations[0].evaluation == "independent"]


def _parts(d: SubjectData) -> np.ndarray:
    from deepfn.au.protocol import frame_parts

    return frame_parts(d.sequence, d.frame)


def _view_subject(d: SubjectData, parts: np.ndarray,
                  images: np.ndarray | None = None) -> SubjectData:
    """Train frames -> ``train``, validation frames -> ``val`` and again as ``test`` (the scored
    part; explicit part sequences, :func:`deepfn.au.protocol.frame_parts`); the
    test frames are dropped.  ``parts`` are the protocol parts of ``d``'s frames."""
    from deepfn.au.protocol import TRAIN, VAL

    imgs = d.images if images is None else images
    tr, va = np.flatnonzero(parts == TRAIN), np.flatnonzero(parts == VAL)
    idx = np.concatenate([tr, va, va])
    seq = np.array(["train"] * len(tr) + ["val"] * len(va) + ["test"] * len(va))
    return SubjectData(d.subject, imgs[idx], d.occurrence[idx], d.intensity[idx], seq,
                       np.arange(len(idx), dtype=np.int32))


def train_val_frames(d: SubjectData) -> tuple[SubjectData, np.ndarray]:
    """The train and validation frames of a subject (all the normalizer may train on) and
    their parts (computed on the whole subject: DISFA-like parts depend on all frames)."""
    from deepfn.au.protocol import TEST

    parts = _parts(d)
    keep = parts != TEST
    return d.take(keep), parts[keep]


def write_validation_view(src: Path, dst: Path, subjects: Iterable[str]) -> Path:
    """The validation view (module docstring) of ``subjects`` of corpus ``src`` in ``dst``."""
    subjects = sorted(set(subjects))
    for s in subjects:
        d = read_subject(src, s)
        write_subject(dst, _view_subject(d, _parts(d)))
    write_subjects(dst / "subjects.csv", read_subjects(src / "subjects.csv").loc[subjects])
    write_manifest(dst, source="tuning-validation-view",
                   image_size=read_manifest(src)["image_size"], subjects=subjects)
    return dst


def _val_score(plan: Any, corpus: Path, config: Any, cache: Any = None) -> float:
    from deepfn.au.metrics import summarize_rows
    from deepfn.au.trainer import TrainJob, train_job

    job = TrainJob(key=f"tune/{plan.name}", corpus_dir=str(corpus), train=plan.train,
                   val=plan.val, tests=(("val", plan.val),), aus=plan.aus, seed=plan.seed,
                   config=config)
    rows = train_job(job, cache).tests["val"]
    score = summarize_rows(rows).get("test/score")  # computed on the view's validation frames
    if score is None or not np.isfinite(score):
        raise DeepFNError(f"validation subjects {', '.join(plan.val)}: no coded AU frames in "
                          "their validation part (T6); the corpus is too small to tune on")
    return float(score)


def _audit(plans: Sequence[Any]) -> dict[str, list[str]]:
    """Which subjects a study reads, by role (logged on the MLflow study run)."""
    return {"train": sorted({s for p in plans for s in p.train}),
            "val": sorted({s for p in plans for s in p.val}),
            "never_read": sorted({s for p in plans for s in p.evaluations[0].test_subjects}
                                 - {s for p in plans for s in (*p.train, *p.val)})}


class _Views:
    """Temporary validation views, removed by :meth:`close`; ``device``: ``compute.device``
    resolved once for every trial."""

    def __init__(self, settings: Settings) -> None:
        from deepfn.compute.device import resolve_compute

        compute = resolve_compute(settings.compute.device)
        compute.configure()
        self.device = str(compute.device)
        self.root = Path(tempfile.mkdtemp(prefix="deepfn-tune-"))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class ClassifierObjective(_Views):
    """Tune ``experiments.{lr,beta1,batch_size,epochs,weight_decay}`` (module docstring)."""

    def __init__(self, settings: Settings, data: TuneData, splits: int = 2) -> None:
        from deepfn.au.trainer import SubjectCache

        super().__init__(settings)
        self.settings = settings
        self.cache = SubjectCache()  # the views' subjects, read once for every trial
        norms = ["original"]
        deepfn_dir = data.normalized / "deepfn" if data.normalized is not None else None
        if deepfn_dir is not None and (deepfn_dir / "manifest.json").is_file():
            norms.append("deepfn")
        self.plans = tuning_plans(data.original, template_subject(data.template), settings,
                                  splits, norms)
        needed = sorted({s for p in self.plans for s in (*p.train, *p.val)})
        src = {"original": data.original, "deepfn": deepfn_dir}
        self.views = {n: write_validation_view(d, self.root / n, needed)
                      for n in norms if (d := src[n]) is not None}
        self.subjects = _audit(self.plans)

    def __call__(self, trial: optuna.Trial) -> float:
        from deepfn.au.trainer import ClassifierTrainConfig

        p = suggest_classifier(trial, self.settings.tune)
        rep = Reporter(trial)
        rep.params(p)
        exp = self.settings.experiments
        cfg = ClassifierTrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                                    beta1=p["beta1"], beta2=exp.beta2,
                                    weight_decay=p["weight_decay"], threshold=exp.threshold,
                                    precision=exp.precision, device=self.device)
        scores: list[float] = []
        for step, plan in enumerate(self.plans):
            scores.append(_val_score(plan, self.views[plan.normalization], cfg, self.cache))
            rep.metric(f"val_score_{plan.normalization}_r{plan.evaluations[0].repetition}",
                       scores[-1])
            rep.report(step, float(np.mean(scores)))
        return float(np.mean(scores))


class NormalizerObjective(_Views):
    """Tune ``normalize.{lr,warp_strength,iterations,width}`` and the warm start (docstring)."""

    def __init__(self, settings: Settings, data: TuneData) -> None:
        super().__init__(settings)
        from deepfn.normalizer.jobs import read_template

        self.settings = settings
        tid = template_subject(data.template)
        self.plan = tuning_plans(data.original, tid, settings, 1, ["deepfn"])[0]
        self.template, _ = read_template(data.template_dir)
        subjects = sorted({*self.plan.train, *self.plan.val})
        self.frames = {s: train_val_frames(read_subject(data.ae_dir, s)) for s in subjects}
        size = self.template.images.shape[-1]
        if size != settings.preprocess.ae_size:
            raise DeepFNError(f"{data.template_dir}: template frames are {size}px but "
                              f"preprocess.ae_size is {settings.preprocess.ae_size}; rerun "
                              "dvc repro preprocess template")
        self.table = read_subjects(data.original / "subjects.csv").loc[subjects]
        self.subjects = _audit([self.plan])

    def __call__(self, trial: optuna.Trial) -> float:
        import torch

        from deepfn.au.trainer import ClassifierTrainConfig
        from deepfn.normalizer.jobs import init_model, seed_for, set_faces, set_trainable
        from deepfn.normalizer.model import ArchConfig
        from deepfn.normalizer.preview import reconstruct
        from deepfn.normalizer.train import NormalizerTrainConfig, fit_normalizer, frames_to_tensor
        from deepfn.normalizer.transfer import normalize_frames

        s = self.settings
        p = suggest_normalizer(trial, s.tune, s)
        rep = Reporter(trial)
        rep.params(p)
        implied = warm_start_overrides(p["pretrain_iterations"])
        norm = s.normalize.model_copy(update={
            "lr": p["lr"], "warp_strength": p["warp_strength"], "iterations": p["iterations"],
            "width": p["width"], **{k.split(".", 1)[1]: v for k, v in implied.items()}})
        warm = norm.warm_start
        arch = ArchConfig.from_settings(norm, s.preprocess)
        template = frames_to_tensor(self.template.images)
        base = None
        if warm:
            seed = seed_for(norm.seed, "pretrain")
            base = set_faces(init_model(arch, seed, norm.init), template=template)
            fit_normalizer(base, template, None,
                           NormalizerTrainConfig.from_settings(norm, p["pretrain_iterations"],
                                                               device=self.device),
                           torch.Generator().manual_seed(seed))
            base.copy_template_decoder_to_subject()
        view = self.root / f"trial-{trial.number}"
        errors: list[float] = []
        try:
            for step, (sid, (d, parts)) in enumerate(self.frames.items()):
                seed = seed_for(norm.seed, sid)
                model = copy.deepcopy(base) if base is not None else set_faces(
                    init_model(arch, seed, norm.init), template=template)
                x = frames_to_tensor(d.images)
                set_trainable(set_faces(model, subject=x), norm.finetune)
                fit_normalizer(model, template, x,
                               NormalizerTrainConfig.from_settings(norm, device=self.device),
                               torch.Generator().manual_seed(seed))
                rec = reconstruct(model, d.images, "subject")
                errors.append(float(np.abs(rec.astype(np.float32) - d.images).mean() / 255.0))
                normalized = normalize_frames(model, d.images, s.preprocess.clf_size)  # Eq. 2
                write_subject(view, _view_subject(d, parts, normalized))
                rep.report(step, -float(np.mean(errors)), name="neg_reconstruction_l1")
            write_subjects(view / "subjects.csv", self.table)
            score = _val_score(self.plan, view, ClassifierTrainConfig.from_settings(
                s.experiments, device=self.device))
        finally:
            shutil.rmtree(view, ignore_errors=True)
        rep.metric("val_score", score)
        return score


def build_objective(target: str, settings: Settings, data: TuneData,
                    splits: int = 2) -> ClassifierObjective | NormalizerObjective:
    if target == "classifier":
        return ClassifierObjective(settings, data, splits)
    if target == "normalizer":
        return NormalizerObjective(settings, data)
    raise DeepFNError(f"tune target {target!r}: allowed: classifier, normalizer")
