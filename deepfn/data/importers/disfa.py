"""DISFA importer: the community layout of the licensed DISFA release.

::

    <root>/Videos_LeftCamera/LeftVideoSN001_comp.avi
    <root>/ActionUnit_Labels/SN001/SN001_au1.txt       'frame,intensity' lines, no header, 1-based

Only ``DISFA_AUS`` (1, 2, 4, 6, 12) are read (files au1, au2, au4, au6, au12; the others are
ignored); intensity 0..5 is kept, occurrence = intensity >= 2, every other AU column is -1.
Each label file must have exactly one line per video frame.  The sequence id is ``V1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from deepfn.data.corpus import AUS, DISFA_AUS, SubjectData
from deepfn.data.importers.common import (
    ImportReport,
    metadata_rows,
    natural_key,
    parse_int,
    planned_import,
    progress_line,
)
from deepfn.data.importers.faces import FaceCropper
from deepfn.errors import DeepFNError

__all__ = ["import_disfa", "read_disfa_labels", "OCCURRENCE_THRESHOLD", "SEQUENCE"]

DATASET = "disfa"
VIDEO_DIR = "Videos_LeftCamera"
LABEL_DIR = "ActionUnit_Labels"
VIDEO_RE = re.compile(r"^LeftVideo(SN\d+)_comp\.avi$", re.IGNORECASE)
OCCURRENCE_THRESHOLD = 2  # an AU "occurs" at DISFA intensity >= 2 (the usual convention)
SEQUENCE = "V1"


def read_disfa_labels(path: Path) -> np.ndarray:
    """Parse one DISFA ``SN001_au1.txt`` -> intensity int8 (n,), index i = frame i + 1."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeepFNError(f"{path}: label file is not text; re-copy it from the dataset") from exc
    except OSError as exc:
        raise DeepFNError(f"{path}: cannot read label file ({exc.strerror}); fix its "
                          "permissions or re-copy it") from exc
    rows: dict[int, int] = {}
    for line, raw in enumerate(text.splitlines(), start=1):
        cells = [c.strip() for c in raw.split(",")]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells:
            continue
        frame = parse_int(cells[0])
        value = parse_int(cells[1]) if len(cells) == 2 else None
        if len(cells) != 2 or frame is None or value is None:
            raise DeepFNError(
                f"{path}: line {line} is {raw.strip()!r}; a DISFA label file has "
                "'frame,intensity' integer lines and no header; fix or re-copy it"
            )
        if not 0 <= value <= 5:
            raise DeepFNError(f"{path}: line {line} (frame {frame}) has intensity {value}; "
                              "DISFA intensities are 0..5; fix the file")
        if frame in rows:
            raise DeepFNError(f"{path}: frame {frame} is labelled twice (line {line}); keep "
                              "one line per frame")
        rows[frame] = value
    if not rows:
        raise DeepFNError(f"{path}: empty label file; re-copy it from {LABEL_DIR} of the dataset")
    n = len(rows)
    bad = [f for f in rows if not 1 <= f <= n]
    if bad:
        raise DeepFNError(f"{path}: frame {bad[0]} is outside 1..{n}; the {n} lines must label "
                          f"frames 1..{n} (1-based, one per video frame)")
    out = np.empty(n, np.int8)
    for f, v in rows.items():
        out[f - 1] = v
    return out


@dataclass
class _Subject:
    subject: str
    video: Path
    label_files: list[Path]
    intensity: np.ndarray  # int8 (n, len(DISFA_AUS))


def _plan(root: Path, metadata: pd.DataFrame, report: ImportReport) -> list[_Subject]:
    root = Path(root)
    if not root.is_dir():
        raise DeepFNError(f"{root}: DISFA root not found; point synthesize.disfa_root (or "
                          f"'deepfn import disfa ROOT') at the folder holding {VIDEO_DIR}/ and "
                          f"{LABEL_DIR}/")
    vdir, ldir = root / VIDEO_DIR, root / LABEL_DIR
    if not vdir.is_dir():
        raise DeepFNError(f"{vdir}: DISFA video folder not found; expected "
                          f"<root>/{VIDEO_DIR}/LeftVideoSN001_comp.avi, ...")
    if not ldir.is_dir():
        raise DeepFNError(f"{ldir}: DISFA label folder not found; expected "
                          f"<root>/{LABEL_DIR}/SN001/SN001_au1.txt, ...")
    videos: dict[str, Path] = {}
    for f in sorted(vdir.iterdir(), key=lambda p: natural_key(p.name)):
        if f.name.startswith("."):
            continue
        m = VIDEO_RE.match(f.name)
        if m and f.is_file():
            videos[m.group(1).upper()] = f
        else:
            report.warnings.append(f"disfa: ignored {f} (not LeftVideoSN<nnn>_comp.avi)")
    if not videos:
        raise DeepFNError(f"{vdir}: no DISFA videos found; expected "
                          f"{vdir}/LeftVideoSN001_comp.avi, ...")
    subjects = sorted(videos, key=natural_key)
    for d in sorted(ldir.iterdir(), key=lambda p: natural_key(p.name)):
        if d.is_dir() and not d.name.startswith(".") and d.name not in videos:
            report.warnings.append(f"disfa: ignored labels {d} (no video "
                                   f"{vdir / f'LeftVideo{d.name}_comp.avi'})")
    metadata_rows(metadata, subjects, DATASET)

    plans = []
    for s in subjects:
        files = [ldir / s / f"{s}_au{au}.txt" for au in DISFA_AUS]
        columns: list[np.ndarray] = []
        for f in files:
            if not f.is_file():
                raise DeepFNError(f"{f}: DISFA label file not found; every subject needs "
                                  f"{', '.join(f'{s}_au{a}.txt' for a in DISFA_AUS)} in {ldir / s}")
            col = read_disfa_labels(f)
            if columns and len(col) != len(columns[0]):
                raise DeepFNError(f"{f}: {len(col)} label lines but {files[0].name} has "
                                  f"{len(columns[0])}; each file needs one line per video frame")
            columns.append(col)
        plans.append(_Subject(s, videos[s], files, np.stack(columns, axis=1)))
    return plans


def _load(plan: _Subject, detector: FaceCropper, report: ImportReport, progress: bool,
          index: int, total: int) -> SubjectData:
    video = plan.video
    if video.stat().st_size == 0:
        raise DeepFNError(f"{video}: zero-byte video; re-copy it from the dataset")
    cap = cv2.VideoCapture(str(video))
    n_labels = len(plan.intensity)
    rep = report.subject(plan.subject, DATASET)
    images, rows = [], []
    n_read = 0
    try:
        if not cap.isOpened():
            raise DeepFNError(f"{video}: unreadable video (OpenCV cannot open it); re-copy it "
                              "from the dataset or check that it is an AVI")
        while True:
            if n_read >= n_labels:  # only count the surplus frames for the error message
                if not cap.grab():
                    break
                n_read += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            n_read += 1
            face = detector(frame)
            if face is None:
                rep.dropped_no_face += 1
                continue
            images.append(face)
            rows.append(n_read - 1)
    finally:
        cap.release()
    if n_read == 0:
        raise DeepFNError(f"{video}: unreadable video (no frame could be decoded); re-copy it "
                          "from the dataset")
    if n_read != n_labels:
        raise DeepFNError(
            f"{plan.label_files[0]}: {n_labels} label lines but {video.name} has {n_read} frames; "
            "labels and video must match frame for frame (re-copy the labels or the video)")
    rep.frames_read = n_read
    rep.kept = len(images)
    rep.sequences = 1 if images else 0
    progress_line(progress, f"disfa {plan.subject} ({index}/{total}): {rep.kept} frames kept, "
                            f"{rep.dropped_no_face} without a face")
    if not images:
        raise DeepFNError(f"{video}: no face found in any of its {n_read} frames; check the "
                          "video, or use detector 'none' if the frames are already face crops")
    idx = np.asarray(rows, np.int64)
    n = len(idx)
    intensity = np.full((n, len(AUS)), -1, np.int8)
    occurrence = np.full((n, len(AUS)), -1, np.int8)
    for j, au in enumerate(DISFA_AUS):
        col = AUS.index(au)
        intensity[:, col] = plan.intensity[idx, j]
        occurrence[:, col] = (plan.intensity[idx, j] >= OCCURRENCE_THRESHOLD).astype(np.int8)
    return SubjectData(
        subject=plan.subject,
        images=np.stack(images).astype(np.uint8),
        occurrence=occurrence,
        intensity=intensity,
        sequence=np.asarray([SEQUENCE] * n, dtype=str),
        frame=(idx + 1).astype(np.int32),
    )


def import_disfa(root: Path, metadata: pd.DataFrame, *, image_size: int, detector: FaceCropper,
                 progress: bool = True, report: ImportReport | None = None
                 ) -> Iterator[SubjectData]:
    """Yield one :class:`SubjectData` per DISFA subject (frames in video order, 1-based).

    Layout, metadata and every label file are checked before this returns; videos are decoded
    lazily, one subject per ``next()``.  Counts go into ``report``.
    """
    return planned_import(
        DATASET, Path(root), detector.image_size, image_size, report,
        lambda r, rep: _plan(r, metadata, rep),
        lambda plan, rep, i, n: _load(plan, detector, rep, progress, i, n))
