"""The ``transfer`` stage: every subject's frames through its own normalizer (Eq. 2).

    python -m pipelines.transfer --data data/preprocessed/ae --models models/normalizers \\
        --out data/normalized --reports reports/normalization

``X^y = D^y(E(X))`` at the AE resolution, resized to ``preprocess.clf_size`` with the
``preprocess`` stage's own resize (:func:`deepfn.data.preprocess.equalize_resize` without
equalization, as the original classifier corpus was resized) and stored as uint8 in the corpus
format with the labels copied (``manifest.json`` source ``"deepfn"``).  The output directory is
replaced whole and atomically.  The diagnostics of :mod:`~deepfn.normalizer.diagnostics` go to
``reports/normalization/`` (``metrics.json``, ``report.md`` with the per-AU expression probe,
``fig2_group_averages.png``, ``examples.png``) and to a ``transfer`` run in MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepfn.compute.device import resolve_compute
from deepfn.config.settings import Settings
from deepfn.data.corpus import (
    SubjectData,
    data_version,
    read_manifest,
    read_subject,
    read_subjects,
    write_manifest,
    write_subject,
    write_subjects,
)
from deepfn.data.preprocess import equalize_resize
from deepfn.errors import DeepFNError
from deepfn.normalizer.checkpoint import content_hash, load_model
from deepfn.normalizer.diagnostics import (
    GroupAverages,
    ProbeSet,
    expression_markdown,
    fig2_group_averages,
    summarize,
)
from deepfn.normalizer.model import DeepFNAutoencoder
from deepfn.normalizer.preview import grid_image, pick_preview_frames, reconstruct, save_png
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir, write_json, write_text

__all__ = ["normalize_frames", "resize_frames", "run_transfer", "TRANSFER"]


def normalize_frames(model: DeepFNAutoencoder, frames: np.ndarray, out_size: int,
                     batch_size: int = 256) -> np.ndarray:
    """Eq. 2 on uint8 (N, S, S) frames -> uint8 (N, out_size, out_size) on the template's face
    (resized as :func:`resize_frames` does)."""
    return resize_frames(reconstruct(model, frames, "template", batch_size), out_size)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, S, S) -> uint8 (N, size, size), exactly as ``preprocess`` resizes."""
    return frames if frames.shape[-1] == size else equalize_resize(frames, [size],
                                                                    equalize=False)[0]


def _model_paths(models_dir: Path, subjects: list[str]) -> dict[str, Path]:
    paths = {s: models_dir / f"{s}.pt" for s in subjects}
    missing = [s for s, p in paths.items() if not p.is_file()]
    if missing:
        raise DeepFNError(f"{paths[missing[0]]}: no normalizer for subject {missing[0]} "
                          f"({len(missing)} missing); run dvc repro normalize")
    return paths


def run_transfer(settings: Settings, *, data_dir: str | Path, models_dir: str | Path,
                 out_dir: str | Path, reports_dir: str | Path, progress: bool = True
                 ) -> dict[str, Any]:
    """Write the normalized corpus and the diagnostics; returns the metrics dict."""
    from rich.progress import Progress

    data_dir, models_dir = Path(data_dir), Path(models_dir)
    out_dir, reports_dir = Path(out_dir), Path(reports_dir)
    table = read_subjects(data_dir / "subjects.csv")
    read_manifest(data_dir)
    subjects = list(table.index)
    paths = _model_paths(models_dir, subjects)
    clf = settings.preprocess.clf_size
    groups, probes = GroupAverages(clf), ProbeSet()
    templates: set[str] = set()
    weights: dict[str, str] = {}  # subject -> content hash of its normalizer
    examples: list[tuple[np.ndarray, np.ndarray]] = []
    compute = resolve_compute(settings.compute.device)  # Eq. 2 in fp32 on the stage's device
    compute.configure()
    with atomic_dir(out_dir) as tmp, Progress(disable=not progress) as bar:
        task = bar.add_task("transfer", total=len(subjects))
        for i, sid in enumerate(subjects):
            model, meta = load_model(paths[sid], fix="rerun dvc repro normalize")
            if meta.get("subject") != sid:
                raise DeepFNError(f"{paths[sid]}: holds the normalizer of "
                                  f"{meta.get('subject')!r}, not {sid}; rerun dvc repro normalize")
            templates.add(str(meta.get("template_subject")))
            weights[sid] = content_hash(model)
            data = read_subject(data_dir, sid)
            if data.images.shape[-1] != model.cfg.size:
                raise DeepFNError(f"{data_dir}/{sid}.npz: frames are {data.images.shape[-1]}px, "
                                  f"the normalizer expects {model.cfg.size}px; rerun dvc repro")
            after = normalize_frames(compute.place(model), data.images, clf,
                                     settings.transfer.batch_size)
            write_subject(tmp, SubjectData(sid, after, data.occurrence, data.intensity,
                                           data.sequence, data.frame))
            before = resize_frames(data.images, clf)
            row = table.loc[sid].to_dict()
            groups.add(row, before, after)
            probes.add(i, before, after, data.intensity, data.sequence)
            if len(examples) < 10:
                j = pick_preview_frames(data.intensity, data.sequence, n=2)[1]
                examples.append((before[j], after[j]))
            bar.advance(task)
        if len(templates) != 1:
            raise DeepFNError(f"{models_dir}: normalizers trained against different templates "
                              f"({', '.join(sorted(templates))}); rerun dvc repro normalize")
        write_subjects(tmp / "subjects.csv", table)
        template = templates.pop()
        write_manifest(tmp, source="deepfn", image_size=clf, subjects=subjects, extra={
            "template_subject": template,
            "normalizers": weights})
    metrics = {"n_subjects": len(subjects), "template_subject": template, "image_size": clf,
               **summarize(probes, len(subjects)), "group_gap": groups.gaps(),
               "group_subjects": dict(groups.subjects)}
    reports_dir.mkdir(parents=True, exist_ok=True)
    fig2 = fig2_group_averages(groups, reports_dir / "fig2_group_averages.png")
    ex = save_png(reports_dir / "examples.png", grid_image(
        [np.stack([b for b, _ in examples]), np.stack([a for _, a in examples])],
        ["original", "DeepFN"], tile=max(64, clf)))
    write_json(reports_dir / "metrics.json", metrics)
    write_text(reports_dir / "report.md", expression_markdown(metrics))
    _log_run(settings, data_dir, metrics,
             [fig2, ex, reports_dir / "metrics.json", reports_dir / "report.md"])
    return metrics


def _log_run(settings: Settings, data_dir: Path, metrics: dict[str, Any],
             files: list[Path]) -> None:
    from deepfn.tracking import EXPERIMENT_NORMALIZER, Store, common_tags, flatten_params
    from deepfn.tracking.names import TAG_TEMPLATE_SUBJECT
    from deepfn.tracking.provenance import fingerprint_tags

    tags = {**common_tags(stage="transfer", profile=settings.profile,
                          data_version=data_version(data_dir)),
            TAG_TEMPLATE_SUBJECT: metrics["template_subject"], **fingerprint_tags("transfer")}
    params = flatten_params({"profile": settings.profile,
                             "preprocess": settings.preprocess.model_dump(),
                             "transfer": settings.transfer.model_dump()})
    flat = {"identity_accuracy_before": metrics["identity_accuracy"]["before"],
            "identity_accuracy_after": metrics["identity_accuracy"]["after"],
            "identity_accuracy_chance": metrics["identity_accuracy"]["chance"]}
    for name in ("expression_r", "expression_r_cross_subject"):
        for when in ("before", "after"):
            value = metrics[name][f"mean_{when}"]
            if value is not None:
                flat[f"{name}_{when}"] = value
    for au, row in metrics["expression_per_au"].items():
        flat.update({f"expression_r_{au}_{when}": row[when] for when in ("before", "after")
                     if row[when] is not None})
    for label, row in metrics["group_gap"].items():
        flat.update({f"group_gap_{label}_{when}": v for when, v in row.items()})
    store = Store(configured=settings.tracking.uri)
    with store.start_run(EXPERIMENT_NORMALIZER, run_name="transfer", tags=tags,
                         params=params) as run:
        run.log_metrics({k: float(v) for k, v in flat.items() if v == v})  # drop NaN
        for f in files:
            run.log_artifact(f)


# ------------------------------------------------- the stage (pipelines/transfer.py, the CLI)
def _transfer(s: Settings, progress: bool, *, data: Path, models: Path, out: Path,
              reports: Path) -> str:
    m = run_transfer(s, data_dir=data, models_dir=models, out_dir=out, reports_dir=reports,
                     progress=progress)
    ident, expr, nan = m["identity_accuracy"], m["expression_r"], float("nan")
    return (f"{m['n_subjects']} subjects onto {m['template_subject']} -> {out}: identity "
            f"probe {ident['before']:.2f} -> {ident['after']:.2f} (chance "
            f"{ident['chance']:.2f}), expression r {expr['mean_before'] or nan:.2f} -> "
            f"{expr['mean_after'] or nan:.2f}; diagnostics in {reports}")


TRANSFER = Stage("transfer", _transfer)
