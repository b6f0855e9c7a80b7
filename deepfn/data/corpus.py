"""The corpus format every stage reads and writes (synthetic, imported, preprocessed, normalized).

A corpus is a directory::

    subjects.csv      subject,dataset,gender,skin_type,expressivity   (one row per subject)
    manifest.json     {"format": 1, "source": ..., "image_size": H, "aus": [...], "subjects": {...}}
    <subject>.npz     one file per subject (so DVC can version and re-run subjects one by one)

Each ``<subject>.npz`` (no pickles) holds, for N frames:

    images      uint8 (N, H, W)   grayscale, H == W == manifest image_size
    occurrence  int8  (N, 12)     0/1 per AU in ``AUS`` order, -1 = not coded (never turned into 0)
    intensity   int8  (N, 12)     0..5 per AU, -1 = not coded
    sequence    str   (N,)        task / stimulus id ("T1".."T8" for BP4D, "V1" for a DISFA video)
    frame       int32 (N,)        frame number inside the sequence

Datasets: ``bp4d`` (all 12 AUs may be coded) and ``disfa`` (only ``DISFA_AUS`` coded; the other
columns are -1).  Skin groups follow the paper: lighter = Fitzpatrick I-II, darker = V-VI.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfn.errors import DeepFNError
from deepfn.utils.io import atomic_path, sha256_file, write_json

__all__ = [
    "AUS", "DISFA_AUS", "DATASETS", "FORMAT_VERSION", "SUBJECT_COLUMNS",
    "SubjectData", "skin_group", "read_subjects", "write_subjects", "read_subject",
    "write_subject", "read_manifest", "write_manifest", "subject_ids", "data_version",
]

AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 12)
DATASETS: tuple[str, ...] = ("bp4d", "disfa")
FORMAT_VERSION = 1
SUBJECT_COLUMNS: tuple[str, ...] = ("subject", "dataset", "gender", "skin_type", "expressivity")


@dataclass(frozen=True)
class SubjectData:
    """All frames and labels of one subject (see the module docstring for shapes)."""

    subject: str
    images: np.ndarray
    occurrence: np.ndarray
    intensity: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise DeepFNError(
                f"subject {self.subject}: images must be uint8 (N, H, W), "
                f"got {self.images.dtype} {self.images.shape}"
            )
        for name in ("occurrence", "intensity"):
            arr = getattr(self, name)
            if arr.shape != (n, len(AUS)):
                raise DeepFNError(
                    f"subject {self.subject}: {name} must have shape ({n}, {len(AUS)}), "
                    f"got {arr.shape}"
                )
        if self.sequence.shape != (n,) or self.frame.shape != (n,):
            raise DeepFNError(
                f"subject {self.subject}: sequence/frame must have shape ({n},), got "
                f"{self.sequence.shape}/{self.frame.shape}"
            )
        occ = self.occurrence
        if not np.isin(occ, (-1, 0, 1)).all():
            raise DeepFNError(f"subject {self.subject}: occurrence values must be -1, 0 or 1")
        inten = self.intensity
        if ((inten < -1) | (inten > 5)).any():
            raise DeepFNError(f"subject {self.subject}: intensity values must be -1 or 0..5")

    @property
    def n_frames(self) -> int:
        return len(self.images)

    def take(self, mask: np.ndarray) -> SubjectData:
        """The frames selected by a boolean mask or index array."""
        return SubjectData(
            self.subject, self.images[mask], self.occurrence[mask], self.intensity[mask],
            self.sequence[mask], self.frame[mask],
        )


def skin_group(skin_type: int) -> str | None:
    """Paper §4.1: 'lighter' for types I-II, 'darker' for V-VI, None in between."""
    if skin_type <= 2:
        return "lighter"
    if skin_type >= 5:
        return "darker"
    return None


def read_subjects(path: str | Path) -> pd.DataFrame:
    """Read and validate ``subjects.csv``; the frame is indexed by subject id."""
    path = Path(path)
    if not path.is_file():
        raise DeepFNError(f"{path}: subjects table not found; run the synthesize stage first")
    try:
        df = pd.read_csv(path, dtype={"subject": str, "dataset": str, "gender": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DeepFNError(f"{path}: not a readable CSV ({exc}); regenerate it") from exc
    missing = [c for c in SUBJECT_COLUMNS if c not in df.columns]
    if missing:
        raise DeepFNError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(SUBJECT_COLUMNS)}"
        )
    bad = df[~df["dataset"].isin(DATASETS)]
    if len(bad):
        raise DeepFNError(f"{path}: subject {bad.iloc[0]['subject']} has dataset "
                          f"{bad.iloc[0]['dataset']!r}; allowed: {', '.join(DATASETS)}")
    bad = df[~df["gender"].isin(("F", "M"))]
    if len(bad):
        raise DeepFNError(f"{path}: subject {bad.iloc[0]['subject']} has gender "
                          f"{bad.iloc[0]['gender']!r}; allowed: F, M")
    skin = pd.to_numeric(df["skin_type"], errors="coerce")
    bad = df[~skin.isin(range(1, 7))]
    if len(bad):
        raise DeepFNError(f"{path}: subject {bad.iloc[0]['subject']} has skin_type "
                          f"{bad.iloc[0]['skin_type']}; allowed: 1..6 (Fitzpatrick I-VI)")
    if df["subject"].duplicated().any():
        dup = df.loc[df["subject"].duplicated(), "subject"].iloc[0]
        raise DeepFNError(f"{path}: subject {dup} is listed twice")
    df["skin_type"] = skin.astype(int)
    df["expressivity"] = pd.to_numeric(df["expressivity"], errors="coerce").astype(float)
    return df.set_index("subject", drop=False)


def write_subjects(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.loc[:, list(SUBJECT_COLUMNS)].to_csv(tmp, index=False)


def subject_ids(corpus_dir: str | Path) -> list[str]:
    return list(read_subjects(Path(corpus_dir) / "subjects.csv").index)


def write_subject(corpus_dir: str | Path, data: SubjectData) -> Path:
    """Write ``<corpus_dir>/<subject>.npz`` atomically and return its path.

    The zip entries carry a fixed timestamp (``np.savez_compressed`` stamps the current time), so
    identical arrays give identical bytes and DVC sees no change when a stage reruns.
    """
    path = Path(corpus_dir) / f"{data.subject}.npz"
    arrays = {
        "images": data.images, "occurrence": data.occurrence.astype(np.int8),
        "intensity": data.intensity.astype(np.int8),
        "sequence": np.asarray(data.sequence, dtype=str), "frame": data.frame.astype(np.int32),
    }
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return path


def read_subject(corpus_dir: str | Path, subject: str) -> SubjectData:
    """Load one subject; a missing or corrupt file is a one-line error naming it."""
    path = Path(corpus_dir) / f"{subject}.npz"
    if not path.is_file():
        raise DeepFNError(f"{path}: no data for subject {subject}; rerun the stage that writes "
                          f"{Path(corpus_dir)} (dvc repro)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("images", "occurrence", "intensity", "sequence", "frame")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DeepFNError(f"{path}: corrupt subject file ({exc.__class__.__name__}); "
                          "delete it and rerun the stage that writes it") from exc
    return SubjectData(subject=subject, **arrays)


def write_manifest(corpus_dir: str | Path, *, source: str, image_size: int,
                   subjects: Iterable[str],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` with a content hash per subject file (the data version)."""
    corpus_dir = Path(corpus_dir)
    entries = {}
    for s in sorted(subjects):
        entries[s] = {"sha256": sha256_file(corpus_dir / f"{s}.npz")}
    manifest = {"format": FORMAT_VERSION, "source": source, "image_size": image_size,
                "aus": list(AUS), "subjects": entries, **(extra or {})}
    write_json(corpus_dir / "manifest.json", manifest)
    return manifest


def read_manifest(corpus_dir: str | Path) -> dict[str, Any]:
    path = Path(corpus_dir) / "manifest.json"
    if not path.is_file():
        raise DeepFNError(f"{path}: corpus manifest not found; rerun the stage that writes it")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeepFNError(f"{path}: manifest is not valid JSON; rerun the stage") from exc
    if not isinstance(manifest, dict):
        raise DeepFNError(f"{path}: manifest is not a JSON object; rerun the stage")
    if manifest.get("format") != FORMAT_VERSION:
        raise DeepFNError(f"{path}: corpus format {manifest.get('format')!r}, expected "
                          f"{FORMAT_VERSION}; rebuild the corpus with this version of deepfn")
    return manifest


def data_version(corpus_dir: str | Path) -> str:
    """A short content hash of a corpus (its per-subject file hashes): the data version tag."""
    import hashlib

    manifest = read_manifest(corpus_dir)
    blob = json.dumps({k: v["sha256"] for k, v in manifest["subjects"].items()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
