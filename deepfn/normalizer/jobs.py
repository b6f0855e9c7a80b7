"""The ``pretrain`` and ``normalize`` stages: load data, train, write the model, log to MLflow.

    python -m pipelines.pretrain  --template data/template --out models/pretrained.pt
    python -m pipelines.normalize --subject F001 --data data/preprocessed/ae \\
        --template data/template --pretrained models/pretrained.pt --out models/normalizers/F001.pt

``pretrain`` (warm start, beyond the paper, §6) trains E and D^y on the template alone for
``pretrain.iterations`` and copies D^y into D^x; with 0 iterations it writes the seeded init, so
``models/pretrained.pt`` always exists (DVC deps stay static).  ``normalize`` trains one
subject's autoencoder (Eq. 1), from ``models/pretrained.pt`` when ``normalize.warm_start`` is on,
else from a seeded init.  Both resume from ``.deepfn/work/<stage>/`` after a kill, and both log
one run each to the ``deepfn-normalizer`` MLflow experiment.

A run's key (tag ``run_key``, also the name of its work checkpoint) is the content hashes of its
data (and, warm-started, of the pretrained model's weights) plus
:func:`deepfn.tracking.provenance.key_parts`: the stage's code fingerprint and every setting that
can change a number.  The model files hold weights and a small ``meta`` that are functions of
those inputs only; wall times and resume points go to the MLflow run.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import torch

from deepfn.compute.device import resolve_compute
from deepfn.config.settings import Settings
from deepfn.data.corpus import SubjectData, data_version, read_manifest, read_subject, read_subjects
from deepfn.errors import DeepFNError
from deepfn.normalizer import checkpoint as ckpt
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder, kaiming_init_
from deepfn.normalizer.preview import grid_image, pick_preview_frames, preview_rows, save_png
from deepfn.normalizer.train import (
    NormalizerTrainConfig,
    TrainState,
    fit_normalizer,
    frames_to_tensor,
)
from deepfn.tracking import (
    EXPERIMENT_NORMALIZER,
    Store,
    common_tags,
    flatten_params,
    run_key,
)
from deepfn.tracking import names as n
from deepfn.tracking.provenance import fingerprint_tags, key_parts
from deepfn.utils.io import sha256_file, write_json

__all__ = ["WORK_DIR", "read_template", "seed_for", "init_model", "set_faces", "set_trainable",
           "run_pretrain", "run_normalize", "RunLog", "Tracker"]

WORK_DIR = Path(".deepfn/work")


class RunLog(Protocol):
    """What a normalizer run logs through (:class:`~deepfn.tracking.RunWriter`, or a recorder
    that a Ray task hands back to the driver: deepfn.compute.fanout)."""

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0,
                    timestamp: int | None = None) -> None: ...

    def flush(self) -> None: ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...


class Tracker(Protocol):
    """Where a run starts (:class:`~deepfn.tracking.Store`, or that recorder)."""

    def start_run(self, experiment: str, *, run_name: str, tags: Mapping[str, str],
                  params: Mapping[str, Any] | None = None, flush_every: int = ...
                  ) -> AbstractContextManager[RunLog]: ...


# ----------------------------------------------------------------------------- small helpers
def seed_for(seed: int, name: str) -> int:
    """A stable per-run seed (the same subject always gets the same init and batches)."""
    return zlib.crc32(f"{seed}:{name}".encode())


def init_model(arch: ArchConfig, seed: int, init: str = "glorot") -> DeepFNAutoencoder:
    """A seeded random init (``init``: glorot | kaiming) that leaves the global torch RNG
    untouched.  With ``arch.mean_face`` the mean-face biases start at 0 (logit 0.5): the caller
    sets them from the frames (:meth:`DeepFNAutoencoder.set_mean_face`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DeepFNAutoencoder(arch)
        if init == "kaiming":
            kaiming_init_(model)
        elif init != "glorot":
            raise DeepFNError(f"normalize.init: {init!r} must be glorot or kaiming")
        return model


def set_faces(model: DeepFNAutoencoder, *, template: torch.Tensor | None = None,
              subject: torch.Tensor | None = None) -> DeepFNAutoencoder:
    """With ``arch.mean_face`` / ``arch.center_input``: D^y's face and input centre <- mean of
    ``template``, D^x's <- mean of ``subject`` (frames (N, 1, S, S) in [0, 1]); a no-op for
    Table-2 models."""
    if model.cfg.mean_face or model.cfg.center_input:
        if template is not None:
            model.set_mean_face("template", template)
        if subject is not None:
            model.set_mean_face("subject", subject)
    return model


def set_trainable(model: DeepFNAutoencoder, finetune: str) -> DeepFNAutoencoder:
    """``normalize.finetune``: ``all`` trains every layer (Eq. 1); ``decoder_subject`` freezes E
    and D^y (requires_grad off), so only D^x learns and D^y(E(x)) stays the warm start's."""
    if finetune not in ("all", "decoder_subject"):
        raise DeepFNError(f"normalize.finetune: {finetune!r} must be all or decoder_subject")
    for name, p in model.named_parameters():
        p.requires_grad_(finetune == "all" or name.startswith("decoder_subject."))
    return model


def read_template(template_dir: str | Path) -> tuple[SubjectData, dict[str, Any]]:
    """The template's frames and its row of ``subjects.csv`` (from ``template.json``)."""
    template_dir = Path(template_dir)
    path = template_dir / "template.json"
    if not path.is_file():
        raise DeepFNError(f"{path}: not found; run the template stage first (dvc repro template)")
    try:
        subject = json.loads(path.read_text())["subject"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeepFNError(f"{path}: no 'subject' in it; rerun dvc repro template") from exc
    table = read_subjects(template_dir / "subjects.csv")
    if subject not in table.index:
        raise DeepFNError(f"{template_dir}/subjects.csv: template subject {subject} missing; "
                          "rerun dvc repro template")
    return read_subject(template_dir, subject), table.loc[subject].to_dict()


def _check_frames(data: SubjectData, where: Path, arch: ArchConfig, min_frames: int) -> None:
    size = data.images.shape[-1]
    if data.images.shape[-2:] != (arch.size, arch.size):
        raise DeepFNError(f"{where}/{data.subject}.npz: frames are {size}x{size} but "
                          f"preprocess.ae_size is {arch.size}; rerun dvc repro preprocess")
    if data.n_frames < min_frames:
        raise DeepFNError(f"{where}/{data.subject}.npz: {data.n_frames} frames, fewer than "
                          f"normalize.min_frames={min_frames}; lower normalize.min_frames or drop "
                          f"subject {data.subject}")


def _file_sha(corpus_dir: Path, subject: str) -> str:
    entry = read_manifest(corpus_dir)["subjects"].get(subject)
    return entry["sha256"] if entry else sha256_file(corpus_dir / f"{subject}.npz")


def _params(settings: Settings) -> dict[str, str]:
    return flatten_params({"profile": settings.profile,
                           "normalize": settings.normalize.model_dump(),
                           "preprocess": settings.preprocess.model_dump(),
                           "pretrain": settings.pretrain.model_dump()})


_FLUSH_EVERY = 300  # metrics per log_batch while training (the curves show up as they grow)


def _final_losses(state: TrainState, log_every: int) -> dict[str, float]:
    """Mean losses of the last ``log_every`` iterations (none before any)."""
    if not state.iteration:
        return {}
    return {f"final_{k}": v for k, v in state.window(state.iteration, log_every).items()}


def _write_and_log(out: Path, model: DeepFNAutoencoder, kind: str, meta: dict[str, Any],
                   data: SubjectData, run: RunLog, run_info: dict[str, Any]) -> dict[str, Any]:
    """Write the model file (weights + ``meta``), then log ``preview.png`` (of ``data``'s neutral
    and most expressive frames) and ``checkpoint.json`` (path, sha256 = the DVC hash, meta and
    ``run_info``: what belongs to this run, not to the file) to ``run``."""
    import tempfile

    ckpt.save_model(out, model, kind=kind, meta=meta)
    frames = data.images[pick_preview_frames(data.intensity, data.sequence)]
    rows, labels = preview_rows(model, frames, subject=kind == "normalizer")
    info = {"path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
            "arch": model.cfg.to_dict(), **meta, **run_info}
    with tempfile.TemporaryDirectory() as tmp:
        save_png(Path(tmp) / "preview.png", grid_image(rows, labels))
        write_json(Path(tmp) / "checkpoint.json", info)
        run.log_artifact(Path(tmp) / "preview.png")
        run.log_artifact(Path(tmp) / "checkpoint.json")
    return info


def _train_and_log(model: DeepFNAutoencoder, template: torch.Tensor,
                   subject: torch.Tensor | None, cfg: NormalizerTrainConfig, seed: int,
                   work: Path, key: str, run: RunLog, progress: str | None
                   ) -> tuple[TrainState, float]:
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    state = fit_normalizer(model, template, subject, cfg, generator, checkpoint=work, key=key,
                           on_log=lambda it, metrics: run.log_metrics(metrics, step=it),
                           progress=progress)
    seconds = time.perf_counter() - t0
    run.log_metrics({n.METRIC_TRAIN_SECONDS: seconds, **_final_losses(state, cfg.log_every)},
                    step=state.iteration)
    run.flush()
    return state, seconds


def _device(settings: Settings) -> str:
    """``compute.device`` resolved once for the stage (its process-wide switches set)."""
    compute = resolve_compute(settings.compute.device, settings.normalize.precision)
    compute.configure()
    return str(compute.device)


def _subject_tags(subject: str, row: dict[str, Any], template_subject: str) -> dict[str, str]:
    return {n.TAG_SUBJECT: subject, n.TAG_DATASET: str(row["dataset"]),
            n.TAG_GENDER: str(row["gender"]), n.TAG_SKIN_TYPE: str(row["skin_type"]),
            n.TAG_TEMPLATE_SUBJECT: template_subject}


# ---------------------------------------------------------------------------------- pretrain
def run_pretrain(settings: Settings, *, template_dir: str | Path, out: str | Path,
                 work_dir: str | Path = WORK_DIR / "pretrain", progress: bool = True
                 ) -> dict[str, Any]:
    """Train E and D^y on the template alone; D^x <- D^y; write ``out`` (kind 'pretrained')."""
    template_dir, out = Path(template_dir), Path(out)
    s = settings.normalize
    arch = ArchConfig.from_settings(s, settings.preprocess)
    template, row = read_template(template_dir)
    _check_frames(template, template_dir, arch, s.min_frames)
    iterations = settings.pretrain.iterations
    seed = seed_for(s.seed, "pretrain")
    device = _device(settings)
    key = run_key(stage="pretrain", template=_file_sha(template_dir, template.subject),
                  **key_parts(settings, "pretrain", device))
    work = ckpt.work_checkpoint_path(work_dir, template.subject, key)
    cfg = NormalizerTrainConfig.from_settings(s, iterations=iterations, device=device)
    tags = {**common_tags(stage="pretrain", profile=settings.profile,
                          data_version=data_version(template_dir)),
            **_subject_tags(template.subject, row, template.subject), n.TAG_RUN_KEY: key,
            **fingerprint_tags("pretrain")}
    model = set_faces(init_model(arch, seed, s.init), template=frames_to_tensor(template.images))
    store = Store(configured=settings.tracking.uri)
    with store.start_run(EXPERIMENT_NORMALIZER, run_name=f"pretrain-{template.subject}",
                         tags=tags, params=_params(settings), flush_every=_FLUSH_EVERY) as run:
        state, seconds = TrainState(), 0.0
        if iterations:
            state, seconds = _train_and_log(model, frames_to_tensor(template.images), None, cfg,
                                            seed, work, key, run,
                                            "pretrain" if progress else None)
        model.copy_template_decoder_to_subject()
        meta = {"template_subject": template.subject, "subject": template.subject,
                "iterations": iterations, "seed": seed,
                **_final_losses(state, cfg.log_every)}
        info = _write_and_log(out, model, "pretrained", meta, template, run,
                              {"run_key": key, "train_seconds": seconds})
    work.unlink(missing_ok=True)
    return info


# --------------------------------------------------------------------------------- normalize
def run_normalize(settings: Settings, *, subject: str, data_dir: str | Path,
                  template_dir: str | Path, pretrained: str | Path, out: str | Path,
                  work_dir: str | Path = WORK_DIR / "normalize", progress: bool = True,
                  tracker: Tracker | None = None) -> dict[str, Any]:
    """Train subject ``subject``'s autoencoder against the template; write ``out``.

    The run goes to ``tracker`` (default: the ``tracking.uri`` store); a Ray task passes a
    recorder and the driver logs what it recorded (deepfn.compute.fanout: one writer)."""
    data_dir, template_dir, pretrained, out = map(Path, (data_dir, template_dir, pretrained, out))
    s = settings.normalize
    arch = ArchConfig.from_settings(s, settings.preprocess)
    table = read_subjects(data_dir / "subjects.csv")
    if subject not in table.index:
        raise DeepFNError(f"{data_dir}/subjects.csv: no subject {subject}; check the normalize "
                          "stage's foreach list in dvc.yaml")
    data = read_subject(data_dir, subject)
    _check_frames(data, data_dir, arch, s.min_frames)
    template, _ = read_template(template_dir)
    _check_frames(template, template_dir, arch, s.min_frames)
    seed = seed_for(s.seed, subject)
    if s.warm_start:
        model, pre_meta = ckpt.load_model(pretrained, kind="pretrained", arch=arch,
                                          fix="rerun dvc repro pretrain")
        if pre_meta.get("template_subject") != template.subject:
            raise DeepFNError(f"{pretrained}: pretrained on template "
                              f"{pre_meta.get('template_subject')}, not {template.subject}; "
                              "rerun dvc repro pretrain")
        # the weights, not the file
        init: dict[str, str | int] = {"pretrained": ckpt.content_hash(model)}
    else:
        model = set_faces(init_model(arch, seed, s.init),
                          template=frames_to_tensor(template.images))
        init = {"seed": seed}
    set_faces(model, subject=frames_to_tensor(data.images))  # D^x: the subject's average face
    set_trainable(model, s.finetune)
    device = _device(settings)
    key = run_key(stage="normalize", init=init, subject=_file_sha(data_dir, subject),
                  template=_file_sha(template_dir, template.subject),
                  **key_parts(settings, "normalize", device))
    work = ckpt.work_checkpoint_path(work_dir, subject, key)
    cfg = NormalizerTrainConfig.from_settings(s, device=device)
    tags = {**common_tags(stage="normalize", profile=settings.profile,
                          data_version=data_version(data_dir)),
            **_subject_tags(subject, {str(k): v for k, v in table.loc[subject].items()},
                            template.subject),
            n.TAG_RUN_KEY: key, n.TAG_WARM_START: str(s.warm_start).lower(),
            **fingerprint_tags("normalize")}
    runs: Tracker = tracker or Store(configured=settings.tracking.uri)
    with runs.start_run(EXPERIMENT_NORMALIZER, run_name=f"normalize-{subject}", tags=tags,
                        params=_params(settings), flush_every=_FLUSH_EVERY) as run:
        state, seconds = _train_and_log(
            model, frames_to_tensor(template.images), frames_to_tensor(data.images), cfg, seed,
            work, key, run, f"normalize {subject}" if progress else None)
        meta = {"subject": subject, "template_subject": template.subject,
                "iterations": state.iteration, "warm_start": s.warm_start, "seed": seed,
                **_final_losses(state, cfg.log_every)}
        info = _write_and_log(out, model, "normalizer", meta, data, run,
                              {"run_key": key, "train_seconds": seconds,
                               "resumed_from": state.resumed_from})
    work.unlink(missing_ok=True)
    return info
