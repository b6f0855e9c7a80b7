"""Preprocessing (paper §3.1): gray, histogram equalization (kornia), resize to the AE and
classifier resolutions.  Writes two corpora in the same format: ``ae/`` and ``clf/``.

    python pipelines/preprocess.py --raw data/raw --out data/preprocessed
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress

from deepfn.config.settings import PreprocessSettings, Settings
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
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir

__all__ = ["equalize_resize", "preprocess_corpus", "run_preprocess", "PREPROCESS"]


def equalize_resize(images: np.ndarray, sizes: Sequence[int], *, equalize: bool = True,
                    chunk: int = 512) -> list[np.ndarray]:
    """(N, H, W) uint8 -> one (N, s, s) uint8 array per size in ``sizes``: per-image histogram
    equalization (kornia) at the source resolution, then an anti-aliased resize to each size."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 (N, H, W), got {images.dtype} {images.shape}")
    outs = [np.empty((len(images), s, s), dtype=np.uint8) for s in sizes]
    for i in range(0, len(images), chunk):
        x = torch.from_numpy(images[i:i + chunk]).unsqueeze(1).float().div_(255.0)  # (B,1,H,W)
        if equalize:
            x = kornia.enhance.equalize(x)
        for out, size in zip(outs, sizes, strict=True):
            y = x
            if x.shape[-1] != size or x.shape[-2] != size:
                # torch's native anti-aliased bilinear (kornia's antialias path blurs with a
                # Gaussian first and is ~20x slower here)
                y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                  align_corners=False)
            out[i:i + chunk] = y.clamp(0, 1).mul_(255).round_().to(torch.uint8)[:, 0].numpy()
    return outs


def preprocess_corpus(raw_dir: str | Path, out_dir: str | Path,
                      settings: PreprocessSettings, progress: bool = True) -> dict[str, int]:
    """Write ``out_dir/ae`` and ``out_dir/clf`` (atomically, whole) from the raw corpus."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    manifest = read_manifest(raw_dir)
    subjects = read_subjects(raw_dir / "subjects.csv")
    missing = [s for s in subjects.index if s not in manifest["subjects"]]
    if missing:
        raise DeepFNError(f"{raw_dir}/manifest.json: subject {missing[0]} is in subjects.csv but "
                          "not in the manifest; rebuild the corpus (dvc repro synthesize)")
    raw_version = data_version(raw_dir)
    sizes = {"ae": settings.ae_size, "clf": settings.clf_size}
    frames = 0
    with atomic_dir(out_dir) as tmp, Progress(disable=not progress) as bar:
        task = bar.add_task("preprocess", total=len(subjects))
        for name in sizes:
            (tmp / name).mkdir()
            write_subjects(tmp / name / "subjects.csv", subjects)
        for sid in subjects.index:
            data = read_subject(raw_dir, sid)
            frames += data.n_frames
            resized = equalize_resize(data.images, list(sizes.values()),
                                      equalize=settings.equalize)
            for name, images in zip(sizes, resized, strict=True):
                write_subject(tmp / name, SubjectData(sid, images, data.occurrence,
                                                      data.intensity, data.sequence, data.frame))
            bar.advance(task)
        for name, size in sizes.items():
            write_manifest(tmp / name, source=manifest["source"], image_size=size,
                           subjects=subjects.index,
                           extra={"preprocess": settings.model_dump(),
                                  "raw_version": raw_version})
    return {"subjects": len(subjects), "frames": frames}


# ------------------------------------------------ the stage (pipelines/preprocess.py, the CLI)
def run_preprocess(settings: Settings, *, raw: str | Path, out: str | Path,
                   progress: bool = True) -> dict[str, int]:
    """Histogram equalization + resize: ``out/ae`` and ``out/clf``; subject and frame counts."""
    return preprocess_corpus(raw, out, settings.preprocess, progress=progress)


def _preprocess(s: Settings, progress: bool, *, raw: Path, out: Path) -> str:
    info = run_preprocess(s, raw=raw, out=out, progress=progress)
    return f"{info['subjects']} subjects, {info['frames']} frames -> {out}"


PREPROCESS = Stage("preprocess", _preprocess)
