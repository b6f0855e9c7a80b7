"""AU metrics (paper §4.3): per-AU F1 and accuracy at a threshold, their mean (the "score").

Conventions (pinned by ``tests/au/test_metrics.py`` against scikit-learn):

* only coded frames count: a label of -1 is dropped for that AU (never read as 0);
* a frame is predicted positive when ``p > threshold`` (Keras' ``binary_accuracy`` rule); the
  threshold is one number for every AU (``experiments.thresholds: fixed``, the paper's 0.5) or
  one per AU chosen on the validation part (``validation``: :func:`tune_thresholds`);
* F1 with no positive labels *and* no positive predictions is 0.0 -- scikit-learn's
  ``f1_score(..., zero_division=0)`` (:data:`F1_ZERO_DIVISION`);
* an AU with no coded frames at all has NaN metrics and is skipped by every mean;
* a participant's score is the mean over AUs of ``(F1 + accuracy) / 2``; a condition's
  ``test/score`` is the mean over its test participants (each participant weighs the same).

Reference classifiers (:data:`REFERENCES`, expected values on the same test frames, so a reader
sees how far a model is above trivial; ``reference/<name>/<metric>`` in :func:`summarize_rows`):

* ``absent``: predicts "absent" everywhere (F1 0, accuracy = 1 - prevalence);
* ``random``: predicts "present" at random with the model's *training* prevalence ``q`` of the
  AU (prevalence-matched): F1 = 2pq / (p + q), accuracy = pq + (1 - p)(1 - q), with ``p`` the
  test prevalence (F1 as the ratio of the expected counts);
* ``majority``: predicts the training data's majority label (``q > 0.5``) everywhere -- for a
  person-dependent model the subject's own majority label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepfn.tracking.names import (
    REFERENCES,
    SCORE_METRICS,
    au_metric,
    participant_metric,
    reference_metric,
    summary_metric,
)

__all__ = ["F1_ZERO_DIVISION", "REFERENCES", "THRESHOLD_GRID", "Threshold", "AUMetrics",
           "au_metrics", "validation_f1", "tune_thresholds", "positive_rate",
           "reference_metrics", "participant_rows", "summarize_rows"]

F1_ZERO_DIVISION = 0.0
# Candidate thresholds of :func:`tune_thresholds`: 0.05, 0.10, ..., 0.95.
THRESHOLD_GRID: np.ndarray = np.round(np.arange(1, 20) * 0.05, 2)
# One threshold for every AU, or one per AU column (shape (A,)).
Threshold = float | np.ndarray


@dataclass(frozen=True)
class AUMetrics:
    """Per-AU arrays of shape (A,): F1, accuracy, score = (F1 + accuracy) / 2, coded frames."""

    f1: np.ndarray
    accuracy: np.ndarray
    score: np.ndarray
    n_frames: np.ndarray
    n_positive: np.ndarray


def au_metrics(labels: np.ndarray, probs: np.ndarray, threshold: Threshold = 0.5) -> AUMetrics:
    """Metrics per AU column of ``labels`` (N, A) in {-1, 0, 1} and ``probs`` (N, A) in [0, 1];
    ``threshold`` one number or one per AU (A,)."""
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


def validation_f1(labels: np.ndarray, probs: np.ndarray, threshold: Threshold = 0.5) -> float:
    """Model selection criterion: mean F1 over the AUs that have positives in ``labels``.

    No AU with positives -> NaN (the trainer then keeps the first epoch's model).
    """
    m = au_metrics(labels, probs, threshold)
    has_pos = m.n_positive > 0
    return float(m.f1[has_pos].mean()) if has_pos.any() else float("nan")


def tune_thresholds(labels: np.ndarray, probs: np.ndarray, default: float = 0.5,
                    grid: np.ndarray = THRESHOLD_GRID) -> np.ndarray:
    """Per AU column the threshold of ``grid`` with the highest F1 on ``labels`` / ``probs``
    (validation frames) -- the lowest such threshold on ties; ``default`` for an AU without
    positive labels (nothing to tune on).  Returns float64 (A,)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if labels.shape != probs.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and probs {probs.shape} must both be (N, A)")
    pos = labels == 1
    neg = labels == 0
    pred = probs[None] > np.asarray(grid, dtype=np.float64)[:, None, None]  # (G, N, A)
    tp = (pred & pos).sum(1)
    fp = (pred & neg).sum(1)
    fn = pos.sum(0)[None] - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # (G, A)
    best = np.asarray(grid, dtype=np.float64)[f1.argmax(0)]
    return np.where(pos.any(0), best, default)


def positive_rate(labels: np.ndarray) -> np.ndarray:
    """Per AU column the fraction of coded frames (label >= 0) that are positive (NaN: none)."""
    labels = np.asarray(labels)
    n = (labels >= 0).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, (labels == 1).sum(0) / np.maximum(n, 1), np.nan)


def reference_metrics(p: np.ndarray, q: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Expected F1 and accuracy of the :data:`REFERENCES` per AU, for test prevalence ``p`` and
    training prevalence ``q`` (arrays of the same shape; NaN ``q`` -> ``q = p``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.where(np.isnan(np.asarray(q, dtype=np.float64)), p, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        random_f1 = np.where(p + q > 0, 2 * p * q / (p + q), F1_ZERO_DIVISION)
        majority_f1 = np.where(q > 0.5, 2 * p / (1 + p), F1_ZERO_DIVISION)
    return {"absent": {"f1": np.zeros_like(p), "accuracy": 1 - p},
            "random": {"f1": random_f1, "accuracy": p * q + (1 - p) * (1 - q)},
            "majority": {"f1": majority_f1, "accuracy": np.where(q > 0.5, p, 1 - p)}}


def participant_rows(participants: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                     au_names: Sequence[str], threshold: Threshold = 0.5,
                     train_rate: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The per-participant x AU table: rows {participant, au, f1, accuracy, score, n_frames,
    n_positive, <reference>_f1, <reference>_accuracy}.

    ``participants`` (N,) holds each frame's subject id; AUs without coded frames are left out.
    ``train_rate`` (A,): the model's training prevalence per AU (:func:`positive_rate` of its
    training labels) for the ``random`` and ``majority`` references; None -> the participant's
    own test prevalence.
    """
    participants = np.asarray(participants)
    q = np.full(len(au_names), np.nan) if train_rate is None else np.asarray(train_rate)
    rows: list[dict[str, Any]] = []
    for p in dict.fromkeys(participants.tolist()):  # first-seen order, stable
        sel = participants == p
        m = au_metrics(labels[sel], probs[sel], threshold)
        with np.errstate(divide="ignore", invalid="ignore"):
            prev = m.n_positive / np.maximum(m.n_frames, 1)
        ref = reference_metrics(prev, q)
        for j, au in enumerate(au_names):
            if m.n_frames[j] == 0:
                continue
            row = {"participant": str(p), "au": au, "f1": float(m.f1[j]),
                   "accuracy": float(m.accuracy[j]), "score": float(m.score[j]),
                   "n_frames": int(m.n_frames[j]), "n_positive": int(m.n_positive[j])}
            for name, vals in ref.items():
                row[f"{name}_f1"] = float(vals["f1"][j])
                row[f"{name}_accuracy"] = float(vals["accuracy"][j])
            rows.append(row)
    return rows


def summarize_rows(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Aggregate a participant table into the logged metrics (names as the stats stage reads).

    ``test/score|f1|accuracy``: mean over participants of their mean over AUs;
    ``test/<AU>/<metric>``: mean over participants of that AU;
    ``participant/<id>/<metric>``: that participant's mean over AUs;
    ``reference/<name>/<metric>``: the same mean as ``test/<metric>`` for each reference
    classifier (:data:`REFERENCES`), when the rows carry them.
    """
    out: dict[str, float] = {}
    if not rows:
        return out
    metrics = SCORE_METRICS
    by_p: dict[str, list[dict[str, Any]]] = {}
    by_au: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_p.setdefault(r["participant"], []).append(r)
        by_au.setdefault(r["au"], []).append(r)
    per_p = {p: {k: float(np.mean([r[k] for r in rs])) for k in metrics}
             for p, rs in by_p.items()}
    for k in metrics:
        out[summary_metric(k)] = float(np.mean([v[k] for v in per_p.values()]))
    for au, rs in by_au.items():
        for k in metrics:
            out[au_metric(au, k)] = float(np.mean([r[k] for r in rs]))
    for p, v in per_p.items():
        for k in metrics:
            out[participant_metric(p, k)] = v[k]
    for name in REFERENCES:
        if f"{name}_f1" not in rows[0]:
            continue
        f1 = [float(np.mean([r[f"{name}_f1"] for r in rs])) for rs in by_p.values()]
        acc = [float(np.mean([r[f"{name}_accuracy"] for r in rs])) for rs in by_p.values()]
        out[reference_metric(name, "f1")] = float(np.mean(f1))
        out[reference_metric(name, "accuracy")] = float(np.mean(acc))
        out[reference_metric(name, "score")] = (out[reference_metric(name, "f1")]
                                                + out[reference_metric(name, "accuracy")]) / 2
    return out
