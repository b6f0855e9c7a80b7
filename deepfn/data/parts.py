"""Frame parts: which frames of a subject are train, validation and test (paper §4.1).

Each recording segment (a BP4D task ``T1``..``T8``, or one eighth of any other sequence, e.g. a
DISFA video) is ordered in time and cut into 8 contiguous blocks: blocks 1-5 train, 6
validation, 7-8 test.  So every part holds a stretch of every task (and its AUs), and test frames
never touch train frames.  Never random frames (neighbours would leak).  Sequences named
``train`` / ``val`` / ``test`` are that part as a whole (explicit layouts).

Data-level (the corpus generator guarantees every AU in every part; the protocol in
:mod:`deepfn.au.protocol` and the trainer read the parts), so it lives below both.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["PARTS", "TRAIN", "VAL", "TEST", "N_BLOCKS", "BLOCK_PART", "segment_parts",
           "frame_parts"]

TRAIN, VAL, TEST = 0, 1, 2
PARTS: tuple[str, ...] = ("train", "val", "test")
N_BLOCKS = 8
# Block index 0..7 within a segment -> part: blocks 1-5 train, 6 validation, 7-8 test.
BLOCK_PART = np.array([TRAIN] * 5 + [VAL] + [TEST] * 2, dtype=np.int8)
# Where a segment of n frames is cut: train = [0, 5n/8), val = [5n/8, 6n/8), test = the rest.
_CUTS = (5, 6)
_TASK = re.compile(r"^T[0-9]+$")
_EXPLICIT = {name: part for part, name in enumerate(PARTS)}


def _natural(name: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def segment_parts(n: int) -> np.ndarray:
    """Parts (int8, (n,)) of a segment of ``n`` frames in time order: the first 5/8 train, the
    next 1/8 validation, the last 2/8 test; from 3 frames on, every part gets at least one."""
    c1, c2 = (n * c // N_BLOCKS for c in _CUTS)
    if n >= 3:
        c2 = min(max(c2, 2), n - 1)
        c1 = min(max(c1, 1), c2 - 1)
    out = np.full(n, TEST, dtype=np.int8)
    out[:c1], out[c1:c2] = TRAIN, VAL
    return out


def frame_parts(sequence: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Part (TRAIN/VAL/TEST, int8) of each frame of one subject, shape (N,).

    Each sequence is ordered by ``frame`` and cut into segments -- one per BP4D task (``T<k>``),
    8 equal ones for any other sequence (a DISFA video: its stimulus clips) -- and each segment
    into parts by :func:`segment_parts`.  A sequence named ``train``, ``val`` or ``test`` is that
    part as a whole.
    """
    sequence = np.asarray(sequence).astype(str)
    frame = np.asarray(frame)
    parts = np.empty(len(sequence), dtype=np.int8)
    for name in sorted(set(sequence.tolist()), key=_natural):
        idx = np.flatnonzero(sequence == name)
        if name in _EXPLICIT:
            parts[idx] = _EXPLICIT[name]
            continue
        idx = idx[np.argsort(frame[idx], kind="stable")]
        n_seg = 1 if _TASK.match(name) else N_BLOCKS
        bounds = np.arange(n_seg + 1) * len(idx) // n_seg
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            parts[idx[a:b]] = segment_parts(int(b - a))
    return parts
