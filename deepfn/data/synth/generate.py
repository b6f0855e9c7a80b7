"""Renders a whole synthetic corpus: one subject at a time, from its own sub-seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from deepfn.data.corpus import SubjectData, write_manifest, write_subject, write_subjects
from deepfn.data.synth.behavior import BP4D_TASKS, code_labels, subject_intensities
from deepfn.data.synth.identity import sample_identity
from deepfn.data.synth.nuisance import sample_nuisance
from deepfn.data.synth.render import render_faces
from deepfn.data.synth.roster import roster_metadata, subject_rng
from deepfn.errors import DeepFNError
from deepfn.utils.io import atomic_dir

__all__ = ["SubjectPlan", "plan_subject", "render_plan", "synthesize_corpus"]


@dataclass(frozen=True)
class SubjectPlan:
    """Everything needed to render one subject: identity, AU time courses, nuisance."""

    subject: str
    dataset: str
    identity: dict[str, float]
    intensity: np.ndarray           # (N, 12) float, continuous 0..5
    nuisance: dict[str, np.ndarray]  # each (N,) float32
    sequence: np.ndarray
    frame: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.intensity)


def plan_subject(row: pd.Series, *, seed: int, identity_strength: float = 1.0,
                 frames_per_sequence: int = 30) -> SubjectPlan:
    """Draw a subject's identity, behaviour and nuisance from its own sub-seeds."""
    sid, dataset = str(row["subject"]), str(row["dataset"])
    identity = sample_identity(subject_rng(seed, sid, "identity"), str(row["gender"]),
                               int(row["skin_type"]), identity_strength, dataset)
    inten, seq, frame = subject_intensities(dataset, frames_per_sequence,
                                            expressivity=float(row["expressivity"]),
                                            rng=subject_rng(seed, sid, "behavior"))
    n_seq = len(BP4D_TASKS) if dataset == "bp4d" else 1
    f = frames_per_sequence if dataset == "bp4d" else 8 * frames_per_sequence
    nuisance = sample_nuisance(dataset, n_seq, f, subject_rng(seed, sid, "nuisance"))
    return SubjectPlan(sid, dataset, identity, inten.astype(np.float32), nuisance, seq, frame)


def render_plan(plan: SubjectPlan, *, image_size: int = 128, batch_size: int = 256,
                on_batch: Callable[[int], object] | None = None) -> np.ndarray:
    """Render all frames of a plan -> (N, image_size, image_size) uint8."""
    n = plan.n_frames
    images = np.empty((n, image_size, image_size), dtype=np.uint8)
    for i in range(0, n, batch_size):
        j = min(i + batch_size, n)
        ident = {k: torch.full((j - i,), v, dtype=torch.float32)
                 for k, v in plan.identity.items()}
        nuis = {k: torch.from_numpy(v[i:j]) for k, v in plan.nuisance.items()}
        images[i:j] = render_faces(ident, torch.from_numpy(plan.intensity[i:j]), nuis,
                                   image_size).numpy()
        if on_batch is not None:
            on_batch(j - i)
    return images


def synthesize_corpus(out_dir: Path, subjects: Sequence[str], *, seed: int,
                      identity_strength: float = 1.0, frames_per_sequence: int = 30,
                      image_size: int = 128, batch_size: int = 256,
                      progress: bool = True) -> pd.DataFrame:
    """Render the synthetic FACS corpus into ``out_dir`` (corpus format) and return the
    subjects table.  BP4D-like subjects: tasks T1..T8 of ``frames_per_sequence`` frames, all 12
    AUs coded; DISFA-like: one video V1 of 8 x ``frames_per_sequence`` frames, DISFA AUs coded.
    Deterministic in ``seed``; each subject depends only on its own id and the seed.
    ``out_dir`` is written to a temporary sibling and replaces the old directory as a whole
    (no stale subjects, and a killed run leaves the previous corpus intact)."""
    if frames_per_sequence < 1 or image_size < 8 or batch_size < 1:
        raise DeepFNError(f"frames_per_sequence ({frames_per_sequence}), image_size "
                          f"({image_size}) and batch_size ({batch_size}) must be positive")
    if not 0.0 <= identity_strength <= 1.0:
        raise DeepFNError(f"identity_strength must be in [0, 1], got {identity_strength}")
    meta = roster_metadata(subjects, seed=seed)
    plans = [plan_subject(row, seed=seed, identity_strength=identity_strength,
                          frames_per_sequence=frames_per_sequence)
             for _, row in meta.iterrows()]
    columns = (TextColumn("synthesize {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("frames"), TimeRemainingColumn())
    with atomic_dir(out_dir) as tmp, Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("", total=sum(p.n_frames for p in plans))
        for plan in plans:
            bar.update(task, description=plan.subject)
            images = render_plan(plan, image_size=image_size, batch_size=batch_size,
                                 on_batch=lambda k: bar.advance(task, k))
            occ, level = code_labels(plan.intensity, plan.dataset)
            write_subject(tmp, SubjectData(plan.subject, images, occ, level,
                                           plan.sequence, plan.frame))
        write_subjects(tmp / "subjects.csv", meta)
        write_manifest(tmp, source="synthetic", image_size=image_size, subjects=meta.index,
                       extra={"seed": seed, "identity_strength": identity_strength,
                              "frames_per_sequence": frames_per_sequence})
    return meta
