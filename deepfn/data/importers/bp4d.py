"""BP4D importer: the community layout of the licensed BP4D-Spontaneous release.

::

    <root>/<subject>/<task>/<frame>.jpg                     F001/T1/2440.jpg (not zero-padded)
    <root>/AUCoding/AU_OCC/<subject>_<task>.csv             header '0,1,2,4,...'; 0/1, 9 = uncoded
    <root>/AUCoding/AU_INT/AU06/<subject>_<task>_AU06.csv   'frame,intensity' rows, no header
                                                            (AU06/10/12/14/17; >5 = missing)

Only frames with both an image and an occurrence row are kept; the rest are counted in the report.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepfn.data.corpus import AUS, SubjectData
from deepfn.data.importers.common import (
    ImportReport,
    metadata_rows,
    natural_key,
    parse_int,
    planned_import,
    progress_line,
    read_gray,
)
from deepfn.data.importers.faces import FaceCropper
from deepfn.errors import DeepFNError

__all__ = ["import_bp4d", "read_occurrence_csv", "read_intensity_csv", "SUBJECT_RE"]

DATASET = "bp4d"
SUBJECT_RE = re.compile(r"^[FM]\d+$")
IMAGE_RE = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)
LABEL_RE = re.compile(r"^([^_]+)_([^_]+)\.csv$")
CODED = (0, 1, 9)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeepFNError(f"{path}: {what} is not a text CSV; re-copy it from the dataset") from exc
    except OSError as exc:
        raise DeepFNError(f"{path}: cannot read {what} ({exc.strerror}); fix its permissions "
                          "or re-copy it") from exc


def _trim(row: list[str]) -> list[str]:
    row = [c.strip() for c in row]
    while row and row[-1] == "":
        row.pop()
    return row


def read_occurrence_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse a BP4D ``AU_OCC`` file -> (frames int64 (n,), occurrence int8 (n, 12) in AUS order).

    9 (not coded) becomes -1; AU columns other than ours are ignored.
    """
    lines = [_trim(r) for r in csv.reader(_read_text(path, "occurrence label file").splitlines())]
    rows = [(i + 1, r) for i, r in enumerate(lines) if r]
    if not rows:
        raise DeepFNError(f"{path}: empty occurrence label file; re-copy it from "
                          "AUCoding/AU_OCC of the dataset")
    _, header = rows[0]
    aus = [parse_int(c) for c in header[1:]]
    if header[0] != "0" or any(a is None or a <= 0 for a in aus):
        raise DeepFNError(
            f"{path}: wrong header {','.join(header[:6])}...; a BP4D AU_OCC file starts with "
            "'0' (the frame column) followed by AU numbers, e.g. '0,1,2,4,...'"
        )
    if len(set(aus)) != len(aus):
        dup = next(a for a in aus if aus.count(a) > 1)
        raise DeepFNError(f"{path}: wrong header, AU {dup} appears twice; fix the header row")
    missing = [a for a in AUS if a not in aus]
    if missing:
        raise DeepFNError(
            f"{path}: wrong header, no column for AU {', '.join(map(str, missing))}; a BP4D "
            f"AU_OCC file must code AUs {','.join(map(str, AUS))}"
        )
    cols = [1 + aus.index(a) for a in AUS]
    frames: list[int] = []
    occ: list[list[int]] = []
    seen: set[int] = set()
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DeepFNError(f"{path}: line {line} has {len(row)} values but the header has "
                              f"{len(header)}; fix or re-copy the file")
        frame = parse_int(row[0])
        if frame is None or frame < 0:
            raise DeepFNError(f"{path}: line {line} has frame {row[0]!r}; frame numbers must "
                              "be non-negative integers")
        if frame in seen:
            raise DeepFNError(f"{path}: frame {frame} is labelled twice (line {line}); keep "
                              "one row per frame")
        seen.add(frame)
        values = []
        for au, c in zip(AUS, cols, strict=True):
            v = parse_int(row[c])
            if v not in CODED:
                raise DeepFNError(
                    f"{path}: line {line} (frame {frame}) has AU{au} = {row[c]!r}; occurrence "
                    "must be 0, 1 or 9 (not coded); fix the file"
                )
            values.append(-1 if v == 9 else v)
        frames.append(frame)
        occ.append(values)
    return (np.asarray(frames, dtype=np.int64),
            np.asarray(occ, dtype=np.int8).reshape(len(frames), len(AUS)))


def read_intensity_csv(path: Path) -> dict[int, int]:
    """Parse a BP4D ``AU_INT`` file (``frame,intensity`` rows) -> {frame: 0..5 or -1}."""
    out: dict[int, int] = {}
    text = _read_text(path, "intensity label file")
    for line, raw in enumerate(csv.reader(text.splitlines()), start=1):
        row = _trim(raw)
        if not row:
            continue
        if len(row) != 2 or parse_int(row[0]) is None or parse_int(row[1]) is None:
            raise DeepFNError(
                f"{path}: line {line} is {','.join(row)!r}; an AU_INT file has 'frame,intensity' "
                "integer rows and no header row; fix or re-copy it"
            )
        frame, value = parse_int(row[0]), parse_int(row[1])
        assert frame is not None and value is not None
        if frame < 0 or value < 0:
            raise DeepFNError(f"{path}: line {line} has {','.join(row)!r}; frames must be >= 0 "
                              "and intensities 0..5 (>5 = missing); fix the file")
        if frame in out:
            raise DeepFNError(f"{path}: frame {frame} is labelled twice (line {line}); keep "
                              "one row per frame")
        out[frame] = value if value <= 5 else -1
    return out


@dataclass
class _Task:
    task: str
    images: dict[int, Path] = field(default_factory=dict)
    label_file: Path | None = None
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    occurrence: np.ndarray = field(default_factory=lambda: np.zeros((0, len(AUS)), np.int8))
    intensity: np.ndarray = field(default_factory=lambda: np.zeros((0, len(AUS)), np.int8))


@dataclass
class _Subject:
    subject: str
    tasks: list[_Task]


def _check_root(root: Path) -> tuple[Path, Path]:
    root = Path(root)
    if not root.is_dir():
        raise DeepFNError(f"{root}: BP4D root not found; point synthesize.bp4d_root (or "
                          "'deepfn import bp4d ROOT') at the folder holding F001/, M001/, "
                          "AUCoding/")
    occ_dir = root / "AUCoding" / "AU_OCC"
    if not occ_dir.is_dir():
        raise DeepFNError(f"{occ_dir}: BP4D occurrence labels not found; expected "
                          "<root>/AUCoding/AU_OCC/<subject>_<task>.csv")
    return root, occ_dir


def _plan(root: Path, metadata: pd.DataFrame, report: ImportReport) -> list[_Subject]:
    """Find subjects/tasks/images, check metadata and parse every label file (all cheap)."""
    root, occ_dir = _check_root(root)
    subjects = _subject_folders(root, report)
    _check_metadata(metadata, subjects)
    labels = _label_files(occ_dir, root, subjects, report)
    int_dir = root / "AUCoding" / "AU_INT"
    plans = []
    for s in subjects:
        tasks = _image_tasks(root / s)
        for task, f in labels.get(s, {}).items():
            _read_labels(tasks.setdefault(task, _Task(task)), f, int_dir, s)
        _warn_unmatched(tasks, root / s, occ_dir, report)
        plans.append(_Subject(s, [tasks[k] for k in sorted(tasks, key=natural_key)]))
    return plans


def _subject_folders(root: Path, report: ImportReport) -> list[str]:
    """The subject ids of ``root``'s folders (F001, M001, ...); other folders are warned about."""
    subjects = []
    for d in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if not d.is_dir() or d.name.startswith(".") or d.name == "AUCoding":
            continue
        if SUBJECT_RE.match(d.name):
            subjects.append(d.name)
        else:
            report.warnings.append(f"bp4d: ignored folder {d} (not a subject id like F001/M001)")
    if not subjects:
        raise DeepFNError(f"{root}: no BP4D subject folders (F001/, M001/, ...) found; expected "
                          "<root>/<subject>/<task>/<frame>.jpg")
    return subjects


def _check_metadata(metadata: pd.DataFrame, subjects: list[str]) -> None:
    """Every subject has a metadata row whose gender agrees with its id (F.../M...)."""
    meta = metadata_rows(metadata, subjects, DATASET)
    where = metadata.attrs.get("path", "metadata table")
    for s in subjects:
        gender = str(meta.at[s, "gender"])
        if gender != s[0]:
            raise DeepFNError(f"{where}: subject {s} has gender {gender} but BP4D "
                              f"ids starting with {s[0]} are {'female' if s[0] == 'F' else 'male'};"
                              " fix the gender column")


def _label_files(occ_dir: Path, root: Path, subjects: list[str],
                 report: ImportReport) -> dict[str, dict[str, Path]]:
    """subject -> task -> its occurrence CSV; files of no known subject are warned about."""
    labels: dict[str, dict[str, Path]] = {}
    for f in sorted(occ_dir.iterdir(), key=lambda p: natural_key(p.name)):
        if f.name.startswith(".") or not f.is_file():
            continue
        m = LABEL_RE.match(f.name)
        if not m:
            report.warnings.append(f"bp4d: ignored {f} (not <subject>_<task>.csv)")
            continue
        if m.group(1) not in subjects:
            report.warnings.append(f"bp4d: ignored {f} (no image folder {root / m.group(1)})")
            continue
        labels.setdefault(m.group(1), {})[m.group(2)] = f
    return labels


def _image_tasks(subject_dir: Path) -> dict[str, _Task]:
    """task -> its frame images (``<frame>.jpg``) in one subject's folder."""
    tasks: dict[str, _Task] = {}
    for d in subject_dir.iterdir():
        if not d.is_dir() or d.name.startswith("."):
            continue
        t = tasks.setdefault(d.name, _Task(d.name))
        for f in d.iterdir():
            m = IMAGE_RE.match(f.name)
            if m and f.is_file():
                frame = int(m.group(1))
                if frame in t.images:
                    raise DeepFNError(f"{f}: frame {frame} exists twice in {d} "
                                      f"({t.images[frame].name}); keep one file")
                t.images[frame] = f
    return tasks


def _read_labels(t: _Task, occurrence_csv: Path, int_dir: Path, subject: str) -> None:
    """Occurrence rows of ``t`` from its CSV, intensities from ``AU_INT`` where coded (else -1)."""
    t.label_file = occurrence_csv
    t.frames, t.occurrence = read_occurrence_csv(occurrence_csv)
    t.intensity = np.full(t.occurrence.shape, -1, np.int8)
    for j, au in enumerate(AUS):
        ipath = int_dir / f"AU{au:02d}" / f"{subject}_{t.task}_AU{au:02d}.csv"
        if ipath.is_file():
            values = read_intensity_csv(ipath)
            t.intensity[:, j] = [values.get(int(fr), -1) for fr in t.frames]


def _warn_unmatched(tasks: dict[str, _Task], subject_dir: Path, occ_dir: Path,
                    report: ImportReport) -> None:
    """A warning per task with images but no label file, or a label file but no images."""
    for t in tasks.values():
        if t.label_file is None and t.images:
            report.warnings.append(
                f"bp4d: {len(t.images)} frame(s) of {subject_dir / t.task} dropped: no label "
                f"file {occ_dir / f'{subject_dir.name}_{t.task}.csv'}")
        elif t.label_file is not None and not t.images:
            report.warnings.append(
                f"bp4d: {t.label_file} has no images ({subject_dir / t.task} missing or empty)")


def _load(plan: _Subject, root: Path, detector: FaceCropper, report: ImportReport,
          progress: bool, index: int, total: int) -> SubjectData:
    rep = report.subject(plan.subject, DATASET)
    images, occ, inten, seq, frames = [], [], [], [], []
    sequences = set()
    for t in plan.tasks:
        labelled = {int(f): i for i, f in enumerate(t.frames)}
        rep.frames_read += len(t.images)
        rep.dropped_no_label += sum(1 for f in t.images if f not in labelled)
        rep.dropped_no_image += sum(1 for f in labelled if f not in t.images)
        for frame in sorted(f for f in t.images if f in labelled):
            face = detector(read_gray(t.images[frame]))
            if face is None:
                rep.dropped_no_face += 1
                continue
            i = labelled[frame]
            images.append(face)
            occ.append(t.occurrence[i])
            inten.append(t.intensity[i])
            seq.append(t.task)
            frames.append(frame)
            sequences.add(t.task)
    rep.kept = len(images)
    rep.sequences = len(sequences)
    progress_line(progress, f"bp4d {plan.subject} ({index}/{total}): {rep.kept} frames kept, "
                            f"{rep.dropped_no_face} without a face, "
                            f"{rep.dropped_no_label + rep.dropped_no_image} unmatched")
    if not images:
        if rep.dropped_no_face:
            raise DeepFNError(
                f"{root / plan.subject}: no face found in any of the {rep.dropped_no_face} "
                "labelled frames of this subject; check the images, or use detector 'none' if "
                "they are already face crops")
        raise DeepFNError(
            f"{root / plan.subject}: no frame has both an image and an occurrence label; check "
            f"the images and {root / 'AUCoding' / 'AU_OCC' / (plan.subject + '_<task>.csv')}")
    n = len(images)
    return SubjectData(
        subject=plan.subject,
        images=np.stack(images).astype(np.uint8),
        occurrence=np.asarray(occ, np.int8).reshape(n, len(AUS)),
        intensity=np.asarray(inten, np.int8).reshape(n, len(AUS)),
        sequence=np.asarray(seq, dtype=str),
        frame=np.asarray(frames, np.int32),
    )


def import_bp4d(root: Path, metadata: pd.DataFrame, *, image_size: int, detector: FaceCropper,
                progress: bool = True, report: ImportReport | None = None
                ) -> Iterator[SubjectData]:
    """Yield one :class:`SubjectData` per BP4D subject (frames in task, then numeric frame order).

    Layout, metadata and every label file are checked before this returns, so a bad label file
    fails fast; images are read lazily, one subject per ``next()``.  Counts go into ``report``.
    """
    return planned_import(
        DATASET, Path(root), detector.image_size, image_size, report,
        lambda r, rep: _plan(r, metadata, rep),
        lambda plan, rep, i, n: _load(plan, Path(root), detector, rep, progress, i, n))
