"""Shared pieces of the BP4D / DISFA importers: metadata CSV, import report, image reading.

Every problem with the user's files is a one-line :class:`DeepFNError` naming the file and the fix.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pandas as pd

from deepfn.errors import DeepFNError

__all__ = [
    "planned_import",
    "METADATA_COLUMNS", "SubjectReport", "ImportReport", "read_metadata", "check_metadata",
    "metadata_rows", "read_gray", "expressivity", "natural_key", "progress_line",
    "parse_int", "parse_skin_type",
]

METADATA_COLUMNS: tuple[str, ...] = ("subject", "gender", "skin_type")


def natural_key(name: str) -> tuple[int | str, ...]:
    """Sort key that orders ``T2`` before ``T10`` and ``2`` before ``10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def progress_line(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)


def parse_int(text: str) -> int | None:
    """``"3"``/``" 3 "``/``"3.0"`` -> 3; anything else (empty, ``"x"``, ``"2.5"``) -> None."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if not np.isfinite(value) or value != int(value):
        return None
    return int(value)


_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}
SKIN_TYPES_HELP = "a Fitzpatrick type 1..6 or I..VI"


def parse_skin_type(text: str) -> int | None:
    """Fitzpatrick skin type: ``"1"``..``"6"`` or ``"I"``..``"VI"`` (any case, spaces ignored).

    ``"V I"``/``" vi "`` -> 6, ``"3.0"`` -> 3; anything else (``"7"``, ``"IIII"``, ``""``) -> None.
    """
    compact = "".join(text.split()).upper()
    if compact in _ROMAN:
        return _ROMAN[compact]
    value = parse_int(compact)
    return value if value is not None and 1 <= value <= 6 else None


# --------------------------------------------------------------------------- report


@dataclass
class SubjectReport:
    """What happened to one subject's frames.

    ``frames_read`` counts image files found (BP4D) or video frames decoded (DISFA);
    ``kept = frames_read - dropped_no_label - dropped_no_face``.  ``dropped_no_image`` counts label
    rows whose frame has no image (they are not part of ``frames_read``).
    """

    subject: str
    dataset: str
    sequences: int = 0
    frames_read: int = 0
    dropped_no_label: int = 0
    dropped_no_image: int = 0
    dropped_no_face: int = 0
    kept: int = 0
    expressivity: float | None = None


@dataclass
class ImportReport:
    """Per-subject frame counts of one import plus totals; written as ``import_report.json``."""

    detector: str = ""
    image_size: int = 0
    roots: dict[str, str] = field(default_factory=dict)
    subjects: dict[str, SubjectReport] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def subject(self, subject: str, dataset: str) -> SubjectReport:
        if subject not in self.subjects:
            self.subjects[subject] = SubjectReport(subject=subject, dataset=dataset)
        return self.subjects[subject]

    def totals(self, dataset: str | None = None) -> dict[str, int]:
        keys = ("frames_read", "dropped_no_label", "dropped_no_image", "dropped_no_face", "kept")
        rows = [r for r in self.subjects.values() if dataset is None or r.dataset == dataset]
        out = {k: sum(getattr(r, k) for r in rows) for k in keys}
        out["subjects"] = len(rows)
        return out

    def to_dict(self) -> dict[str, Any]:
        datasets = sorted({r.dataset for r in self.subjects.values()})
        return {
            "detector": self.detector,
            "image_size": self.image_size,
            "roots": dict(self.roots),
            "subjects": {s: asdict(r) for s, r in sorted(self.subjects.items())},
            "totals": self.totals(),
            "totals_by_dataset": {d: self.totals(d) for d in datasets},
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------- metadata


def read_metadata(path: str | Path) -> pd.DataFrame:
    """Read the user's ``subject,gender,skin_type`` CSV (extra columns are ignored).

    Returns a frame indexed by subject; ``df.attrs["path"]`` remembers the file for messages.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepFNError(
            f"{path}: subject metadata CSV not found; create it with columns "
            f"{','.join(METADATA_COLUMNS)} (one row per subject) and set synthesize.metadata"
        )
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepFNError(
            f"{path}: not a readable CSV ({exc.__class__.__name__}); expected columns "
            f"{','.join(METADATA_COLUMNS)}"
        ) from exc
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["path"] = str(path)
    return check_metadata(df)


def check_metadata(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a metadata frame (as read by :func:`read_metadata` or built by hand)."""
    where = df.attrs.get("path", "metadata table")
    missing = [c for c in METADATA_COLUMNS if c not in df.columns]
    if missing:
        raise DeepFNError(
            f"{where}: missing column(s) {', '.join(missing)}; the metadata CSV needs "
            f"{','.join(METADATA_COLUMNS)} (gender F/M, skin_type 1..6 or I..VI)"
        )
    out = pd.DataFrame({
        "subject": df["subject"].astype(str).str.strip(),
        "gender": df["gender"].astype(str).str.strip().str.upper(),
        "skin_type": df["skin_type"].astype(str).str.strip(),
    })
    if (out["subject"] == "").any():
        line = int(np.flatnonzero((out["subject"] == "").to_numpy())[0]) + 2
        raise DeepFNError(f"{where}: line {line} has an empty subject; fill it in or delete it")
    dup = out["subject"][out["subject"].duplicated()]
    if len(dup):
        raise DeepFNError(f"{where}: subject {dup.iloc[0]} is listed twice; keep one row")
    bad = out[~out["gender"].isin(("F", "M"))]
    if len(bad):
        raise DeepFNError(
            f"{where}: subject {bad.iloc[0]['subject']} has gender {bad.iloc[0]['gender']!r}; "
            "use F or M"
        )
    skin = out["skin_type"].map(parse_skin_type)
    bad = out[skin.isna()]
    if len(bad):
        raise DeepFNError(
            f"{where}: subject {bad.iloc[0]['subject']} has skin_type "
            f"{bad.iloc[0]['skin_type']!r}; use {SKIN_TYPES_HELP}"
        )
    out["skin_type"] = skin.astype(int)
    out = out.set_index("subject", drop=False)
    out.attrs["path"] = where
    return out


def metadata_rows(metadata: pd.DataFrame, subjects: list[str], dataset: str) -> pd.DataFrame:
    """The metadata rows of ``subjects``; any subject without a row is an error naming the CSV."""
    metadata = check_metadata(metadata)
    where = metadata.attrs.get("path", "metadata table")
    missing = [s for s in subjects if s not in metadata.index]
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise DeepFNError(
            f"{where}: no metadata for {dataset} subject(s) {shown}; add a row "
            f"'{missing[0]},<F|M>,<skin type 1-6 or I-VI>' per subject (columns "
            f"{','.join(METADATA_COLUMNS)})"
        )
    return metadata.loc[subjects]


# --------------------------------------------------------------------------- images


def read_gray(path: Path) -> np.ndarray:
    """Decode an image file as gray uint8; zero-byte, truncated or corrupt files are errors.

    (opencv 4.14's imdecode rejects a truncated JPEG outright, even one missing only its
    end-of-image marker, so truncation surfaces as "corrupt image".)
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DeepFNError(f"{path}: cannot read image ({exc.strerror}); fix its permissions "
                          "or replace it") from exc
    if not data:
        raise DeepFNError(f"{path}: zero-byte image; replace it with the original frame from "
                          "the dataset or delete it")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0:
        raise DeepFNError(f"{path}: corrupt image (cannot be decoded); replace it with the "
                          "original frame from the dataset or delete it")
    return img


def expressivity(occurrence: np.ndarray) -> float | None:
    """Mean over AUs of each AU's occurrence rate, each rate over that AU's coded frames.

    AUs never coded for the subject (all -1) do not count; None when nothing is coded.
    """
    coded = occurrence >= 0
    n = coded.sum(axis=0)
    cols = n > 0
    if not cols.any():
        return None
    rates = (occurrence == 1).sum(axis=0)[cols] / n[cols]
    return float(np.mean(rates))


_Plan = TypeVar("_Plan")
_Loaded = TypeVar("_Loaded")


def planned_import(dataset: str, root: Path, detector_size: int, image_size: int,
                   report: ImportReport | None,
                   plan: Callable[[Path, ImportReport], Sequence[_Plan]],
                   load: Callable[[_Plan, ImportReport, int, int], _Loaded]) -> Iterator[_Loaded]:
    """The shared shape of both importers: check the crop size, plan every subject now (layout,
    metadata and label files fail fast), then load subjects lazily, one per ``next()``."""
    if detector_size != image_size:
        raise ValueError(f"detector crops to {detector_size}, image_size is {image_size}")
    report = report if report is not None else ImportReport()
    root = Path(root)
    report.roots.setdefault(dataset, str(root))
    plans = plan(root, report)

    def _iter() -> Iterator[_Loaded]:
        for i, one in enumerate(plans, start=1):
            yield load(one, report, i, len(plans))

    return _iter()
