"""AU metrics (paper §4.3): per-AU F1 and accuracy at a threshold, their mean (the "score").

Conventions (pinned by ``tests/au/test_metrics.py`` against scikit-learn):

* only coded frames count: a label of -1 is dropped for that AU (never read as 0);
* a frame is predicted positive when ``p > threshold`` (Keras' ``binary_accuracy`` rule);
* F1 with no positive labels *and* no positive predictions is 0.0 -- scikit-learn's
  ``f1_score(..., zero_division=0)`` (:data:`F1_ZERO_DIVISION`);
* an AU with no coded frames at all has NaN metrics and is skipped by every mean;
* a participant's score is the mean over AUs of ``(F1 + accuracy) / 2``; a condition's
  ``test/score`` is the mean over its test participants (each participant weighs the same).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepfn.tracking.names import SCORE_METRICS, au_metric, participant_metric, summary_metric

__all__ = ["F1_ZERO_DIVISION", "AUMetrics", "au_metrics", "validation_f1", "participant_rows",
           "summarize_rows"]

F1_ZERO_DIVISION = 0.0


@dataclass(frozen=True)
class AUMetrics:
    """Per-AU arrays of shape (A,): F1, accuracy, score = (F1 + accuracy) / 2, coded frames."""

    f1: np.ndarray
    accuracy: np.ndarray
    score: np.ndarray
    n_frames: np.ndarray
    n_positive: np.ndarray


def au_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> AUMetrics:
    """Metrics per AU column of ``labels`` (N, A) in {-1, 0, 1} and ``probs`` (N, A) in [0, 1]."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.shape != probs.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and probs {probs.shape} must both be (N, A)")
    coded = labels >= 0
    pos = labels == 1
    pred = probs > threshold
    tp = (pred & pos).sum(0)
    fp = (pred & coded & ~pos).sum(0)
    fn = (~pred & pos).sum(0)
    n = coded.sum(0)
    tn = n - tp - fp - fn
    denom = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), F1_ZERO_DIVISION)
        acc = np.where(n > 0, (tp + tn) / np.maximum(n, 1), np.nan)
    f1 = np.where(n > 0, f1, np.nan).astype(np.float64)
    return AUMetrics(f1=f1, accuracy=acc.astype(np.float64), score=(f1 + acc) / 2.0,
                     n_frames=n.astype(np.int64), n_positive=pos.sum(0).astype(np.int64))


def validation_f1(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> float:
    """Model selection criterion: mean F1 over the AUs that have positives in ``labels``.

    No AU with positives -> NaN (the trainer then keeps the first epoch's model).
    """
    m = au_metrics(labels, probs, threshold)
    has_pos = m.n_positive > 0
    return float(m.f1[has_pos].mean()) if has_pos.any() else float("nan")


def participant_rows(participants: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                     au_names: Sequence[str], threshold: float = 0.5) -> list[dict]:
    """The per-participant x AU table: rows {participant, au, f1, accuracy, score, n_frames}.

    ``participants`` (N,) holds each frame's subject id; AUs without coded frames are left out.
    """
    participants = np.asarray(participants)
    rows: list[dict] = []
    for p in dict.fromkeys(participants.tolist()):  # first-seen order, stable
        sel = participants == p
        m = au_metrics(labels[sel], probs[sel], threshold)
        for j, au in enumerate(au_names):
            if m.n_frames[j] == 0:
                continue
            rows.append({"participant": str(p), "au": au, "f1": float(m.f1[j]),
                         "accuracy": float(m.accuracy[j]), "score": float(m.score[j]),
                         "n_frames": int(m.n_frames[j])})
    return rows


def summarize_rows(rows: Sequence[dict]) -> dict[str, float]:
    """Aggregate a participant table into the logged metrics (names as the stats stage reads).

    ``test/score|f1|accuracy``: mean over participants of their mean over AUs;
    ``test/<AU>/<metric>``: mean over participants of that AU;
    ``participant/<id>/<metric>``: that participant's mean over AUs.
    """
    out: dict[str, float] = {}
    if not rows:
        return out
    metrics = SCORE_METRICS
    by_p: dict[str, list[dict]] = {}
    by_au: dict[str, list[dict]] = {}
    for r in rows:
        by_p.setdefault(r["participant"], []).append(r)
        by_au.setdefault(r["au"], []).append(r)
    per_p = {p: {k: float(np.mean([r[k] for r in rs])) for k in metrics} for p, rs in by_p.items()}
    for k in metrics:
        out[summary_metric(k)] = float(np.mean([v[k] for v in per_p.values()]))
    for au, rs in by_au.items():
        for k in metrics:
            out[au_metric(au, k)] = float(np.mean([r[k] for r in rs]))
    for p, v in per_p.items():
        for k in metrics:
            out[participant_metric(p, k)] = v[k]
    return out
