"""The ``transfer`` stage: every subject's frames through every normalization method.

    python -m pipelines.transfer --data data/preprocessed/ae --models models/normalizers \\
        --out data/normalized --reports reports/normalization

One corpus per method of :data:`deepfn.normalizer.methods.TRANSFERRED`, each a DVC out of its
own under ``--out``: ``deepfn/`` (Eq. 2, ``X^y = D^y(E(X))`` through the subject's own
normalizer), ``person_mean/`` and ``person_median/`` (the person-calibration baselines of
:mod:`deepfn.normalizer.methods`, onto the template the normalizers were trained against).
Every method runs at the AE resolution, is resized to ``preprocess.clf_size`` with the
``preprocess`` stage's own resize (:func:`deepfn.data.preprocess.equalize_resize` without
equalization, as the original classifier corpus was resized) and stored as uint8 in the corpus
format with the labels copied (``manifest.json`` source = the method).  Each directory is
replaced whole and atomically.  The diagnostics of :mod:`~deepfn.normalizer.diagnostics` go to
``reports/normalization/`` (``metrics.json`` with DeepFN's probes at the top level and every
method's under ``methods``; ``report.md`` with the per-AU expression probe per method;
``fig2_group_averages.png`` for DeepFN; ``examples.png`` with a row per method) and to a
``transfer`` run in MLflow.
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
from deepfn.normalizer.methods import (
    BASELINES,
    LABELS,
    TRANSFERRED,
    make_normalizer,
    method_dir,
)
from deepfn.normalizer.model import DeepFNAutoencoder
from deepfn.normalizer.preview import grid_image, pick_preview_frames, save_png
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir, write_json, write_text

__all__ = ["normalize_frames", "resize_frames", "run_transfer", "TRANSFER"]


def normalize_frames(model: DeepFNAutoencoder, frames: np.ndarray, out_size: int,
                     batch_size: int = 256) -> np.ndarray:
    """Eq. 2 on uint8 (N, S, S) frames -> uint8 (N, out_size, out_size) on the template's face
    (resized as :func:`resize_frames` does)."""
    return resize_frames(make_normalizer("deepfn", model=model, batch_size=batch_size)(frames),
                         out_size)


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


def _drop_flat_layout(out_dir: Path) -> None:
    """Remove a corpus written straight into ``out_dir`` (the layout before one directory per
    method), so no stale frames sit beside the method directories."""
    if not (out_dir / "manifest.json").is_file():
        return
    for f in out_dir.iterdir():
        if f.is_file() and (f.suffix == ".npz" or f.name in ("manifest.json", "subjects.csv")):
            f.unlink()


def _template_frames(data_dir: Path, subject: str, size: int) -> np.ndarray:
    """The template's frames in the AE corpus: what its normalizers trained against."""
    try:
        frames = read_subject(data_dir, subject).images
    except DeepFNError as exc:
        raise DeepFNError(f"{data_dir}: template subject {subject} of the normalizers is not in "
                          "the corpus; rerun dvc repro template normalize") from exc
    if frames.shape[-1] != size:
        raise DeepFNError(f"{data_dir}/{subject}.npz: frames are {frames.shape[-1]}px, the "
                          f"normalizers expect {size}px; rerun dvc repro")
    return frames


def run_transfer(settings: Settings, *, data_dir: str | Path, models_dir: str | Path,
                 out_dir: str | Path, reports_dir: str | Path, progress: bool = True
                 ) -> dict[str, Any]:
    """Write one normalized corpus per method and the diagnostics; returns the metrics dict
    (DeepFN's at the top level, every method's under ``methods``)."""
    from contextlib import ExitStack

    from rich.progress import Progress

    data_dir, models_dir = Path(data_dir), Path(models_dir)
    out_dir, reports_dir = Path(out_dir), Path(reports_dir)
    table = read_subjects(data_dir / "subjects.csv")
    read_manifest(data_dir)
    subjects = list(table.index)
    paths = _model_paths(models_dir, subjects)
    clf = settings.preprocess.clf_size
    groups = GroupAverages(clf)
    probes = {m: ProbeSet() for m in TRANSFERRED}
    weights: dict[str, str] = {}  # subject -> content hash of its normalizer
    examples: dict[str, list[np.ndarray]] = {m: [] for m in ("original", *TRANSFERRED)}
    compute = resolve_compute(settings.compute.device)  # Eq. 2 in fp32 on the stage's device
    compute.configure()

    def load(sid: str) -> tuple[DeepFNAutoencoder, str]:
        model, meta = load_model(paths[sid], fix="rerun dvc repro normalize")
        if meta.get("subject") != sid:
            raise DeepFNError(f"{paths[sid]}: holds the normalizer of "
                              f"{meta.get('subject')!r}, not {sid}; rerun dvc repro normalize")
        return model, str(meta.get("template_subject"))

    first, template = load(subjects[0])  # one model in memory at a time (paper size: ~0.3 GB)
    template_frames = _template_frames(data_dir, template, first.cfg.size)
    del first
    baselines = {m: make_normalizer(m, template_frames=template_frames) for m in BASELINES}
    with ExitStack() as stack, Progress(disable=not progress) as bar:
        tmp = {m: stack.enter_context(atomic_dir(method_dir(out_dir, m))) for m in TRANSFERRED}
        task = bar.add_task("transfer", total=len(subjects))
        for i, sid in enumerate(subjects):
            model, theirs = load(sid)
            if theirs != template:  # nothing is written: the atomic directories are dropped
                raise DeepFNError(f"{models_dir}: normalizers trained against different "
                                  f"templates ({', '.join(sorted({template, theirs}))}); rerun "
                                  "dvc repro normalize")
            weights[sid] = content_hash(model)
            data = read_subject(data_dir, sid)
            if data.images.shape[-1] != model.cfg.size:
                raise DeepFNError(f"{data_dir}/{sid}.npz: frames are {data.images.shape[-1]}px, "
                                  f"the normalizer expects {model.cfg.size}px; rerun dvc repro")
            normalizers = {"deepfn": make_normalizer("deepfn", model=compute.place(model),
                                                     batch_size=settings.transfer.batch_size),
                           **baselines}
            before = resize_frames(data.images, clf)
            j = pick_preview_frames(data.intensity, data.sequence, n=2)[1]
            if len(examples["original"]) < 10:
                examples["original"].append(before[j])
            for m in TRANSFERRED:
                after = resize_frames(normalizers[m](data.images), clf)
                write_subject(tmp[m], SubjectData(sid, after, data.occurrence, data.intensity,
                                                  data.sequence, data.frame))
                probes[m].add(i, before, after, data.intensity, data.sequence)
                if m == "deepfn":
                    groups.add(table.loc[sid].to_dict(), before, after)
                if len(examples[m]) < 10:
                    examples[m].append(after[j])
            bar.advance(task)
        for m in TRANSFERRED:
            write_subjects(tmp[m] / "subjects.csv", table)
            extra: dict[str, Any] = {"template_subject": template, "method": m}
            if m == "deepfn":
                extra["normalizers"] = weights
            write_manifest(tmp[m], source=m, image_size=clf, subjects=subjects, extra=extra)
    _drop_flat_layout(out_dir)
    summaries = {m: summarize(probes[m], len(subjects)) for m in TRANSFERRED}
    metrics = {"n_subjects": len(subjects), "template_subject": template, "image_size": clf,
               **summaries["deepfn"], "group_gap": groups.gaps(),
               "group_subjects": dict(groups.subjects), "methods": summaries}
    reports_dir.mkdir(parents=True, exist_ok=True)
    fig2 = fig2_group_averages(groups, reports_dir / "fig2_group_averages.png")
    ex = save_png(reports_dir / "examples.png", grid_image(
        [np.stack(rows) for rows in examples.values()], [LABELS[m] for m in examples],
        tile=max(64, clf)))
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
    for m, summary in metrics["methods"].items():  # every method's probes, side by side
        flat[f"{m}/identity_accuracy_after"] = summary["identity_accuracy"]["after"]
        for name in ("expression_r", "expression_r_cross_subject"):
            if summary[name]["mean_after"] is not None:
                flat[f"{m}/{name}_after"] = summary[name]["mean_after"]
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
    after = ", ".join(f"{method} {v['identity_accuracy']['after']:.2f} / "
                      f"{v['expression_r']['mean_after'] or nan:.2f}"
                      for method, v in m["methods"].items())
    return (f"{m['n_subjects']} subjects onto {m['template_subject']} -> {out}/"
            f"{{{','.join(m['methods'])}}}: identity probe / expression r before "
            f"{ident['before']:.2f} / {expr['mean_before'] or nan:.2f} (chance "
            f"{ident['chance']:.2f}), after: {after}; diagnostics in {reports}")


TRANSFER = Stage("transfer", _transfer)
