"""Metrics golden-tested against scikit-learn (paper §4.3 score = mean of F1 and accuracy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from deepfn.au.metrics import (
    F1_ZERO_DIVISION,
    THRESHOLD_GRID,
    au_metrics,
    participant_rows,
    summarize_rows,
    tune_thresholds,
    validation_f1,
)


def _random(seed: int, n: int = 200, a: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, a)) < rng.uniform(0.05, 0.6, a)).astype(np.int8)
    labels[rng.random((n, a)) < 0.2] = -1
    return labels, rng.random((n, a))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5])
def test_au_metrics_match_sklearn(seed: int, threshold: float) -> None:
    labels, probs = _random(seed)
    m = au_metrics(labels, probs, threshold)
    for j in range(labels.shape[1]):
        coded = labels[:, j] >= 0
        y, pred = labels[coded, j], (probs[coded, j] > threshold).astype(int)
        f1 = f1_score(y, pred, zero_division=0)
        acc = accuracy_score(y, pred)
        assert m.f1[j] == pytest.approx(f1, abs=1e-12)
        assert m.accuracy[j] == pytest.approx(acc, abs=1e-12)
        assert m.score[j] == pytest.approx((f1 + acc) / 2, abs=1e-12)
        assert m.n_frames[j] == coded.sum()


def test_f1_zero_division_and_uncoded_au() -> None:
    labels = np.array([[0, -1], [0, -1], [0, -1]])
    probs = np.array([[0.1, 0.9], [0.2, 0.9], [0.4, 0.9]])
    m = au_metrics(labels, probs)
    # no positives and none predicted: sklearn's zero_division=0
    assert m.f1[0] == F1_ZERO_DIVISION == f1_score([0, 0, 0], [0, 0, 0], zero_division=0)
    assert m.accuracy[0] == 1.0 and m.score[0] == 0.5
    assert math.isnan(m.f1[1]) and math.isnan(m.accuracy[1]) and m.n_frames[1] == 0


def test_threshold_is_strict() -> None:
    m = au_metrics(np.array([[1], [0]]), np.array([[0.5], [0.5]]), 0.5)
    assert m.f1[0] == 0.0 and m.accuracy[0] == 0.5  # p == threshold is negative


def test_validation_f1_averages_aus_with_positives_only() -> None:
    labels = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0]])
    probs = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.1], [0.9, 0.1, 0.1]])
    # AU0 F1 = 1, AU1 has no positives (skipped), AU2 F1 = 0
    assert validation_f1(labels, probs) == pytest.approx(0.5)
    assert math.isnan(validation_f1(np.zeros((2, 2)), np.zeros((2, 2))))


def test_participant_table_and_summary() -> None:
    labels, probs = _random(3, n=60, a=3)
    who = np.repeat(["F001", "M002", "F003"], 20)
    rows = participant_rows(who, labels, probs, ["AU01", "AU02", "AU04"])
    assert [r["participant"] for r in rows[::3]] == ["F001", "M002", "F003"]
    out = summarize_rows(rows)
    per_p = {}
    for p in ("F001", "M002", "F003"):
        sel = who == p
        m = au_metrics(labels[sel], probs[sel])
        per_p[p] = np.mean(m.score)
        assert out[f"participant/{p}/score"] == pytest.approx(per_p[p])
        assert out[f"participant/{p}/f1"] == pytest.approx(np.mean(m.f1))
    assert out["test/score"] == pytest.approx(np.mean(list(per_p.values())))
    au01 = [r["f1"] for r in rows if r["au"] == "AU01"]
    assert out["test/AU01/f1"] == pytest.approx(np.mean(au01))
    assert summarize_rows([]) == {}


def test_reference_classifiers_match_their_simulation() -> None:
    """Expected F1/accuracy of the references against many simulated random classifiers."""
    from deepfn.au.metrics import reference_metrics

    rng = np.random.default_rng(0)
    n, p, q = 4000, 0.2, 0.35
    y = (rng.random(n) < p).astype(int)
    ref = reference_metrics(np.array([y.mean()]), np.array([q]))
    sims = [(f1_score(y, rng.random(n) < q), accuracy_score(y, rng.random(n) < q))
            for _ in range(200)]
    assert ref["random"]["f1"][0] == pytest.approx(np.mean([s[0] for s in sims]), abs=0.005)
    assert ref["random"]["accuracy"][0] == pytest.approx(np.mean([s[1] for s in sims]), abs=0.005)
    assert ref["absent"]["f1"][0] == 0.0
    assert ref["absent"]["accuracy"][0] == pytest.approx(1 - y.mean())
    assert ref["majority"]["accuracy"][0] == pytest.approx(1 - y.mean())  # q < 0.5: absent
    maj = reference_metrics(np.array([y.mean()]), np.array([0.7]))["majority"]
    assert maj["f1"][0] == pytest.approx(f1_score(y, np.ones(n)))
    assert maj["accuracy"][0] == pytest.approx(y.mean())


def test_participant_rows_carry_references_and_summaries_average_them() -> None:
    from deepfn.au.metrics import positive_rate

    labels = np.array([[1, 0], [0, 0], [0, 1], [1, -1]])
    probs = np.array([[0.9, 0.1], [0.2, 0.1], [0.1, 0.8], [0.7, 0.5]])
    parts = np.array(["A", "A", "B", "B"])
    rate = positive_rate(np.array([[1, 0], [1, 1], [0, 0], [1, -1]]))
    assert rate.tolist() == [0.75, pytest.approx(1 / 3)]
    rows = participant_rows(parts, labels, probs, ["AU01", "AU02"], train_rate=rate)
    a01 = next(r for r in rows if r["participant"] == "A" and r["au"] == "AU01")
    assert a01["n_positive"] == 1 and a01["absent_accuracy"] == 0.5
    assert a01["majority_f1"] == pytest.approx(2 * 0.5 / 1.5)  # train majority: present
    out = summarize_rows(rows)
    per_p = {p: np.mean([r["absent_accuracy"] for r in rows if r["participant"] == p])
             for p in "AB"}
    assert out["reference/absent/accuracy"] == pytest.approx(np.mean(list(per_p.values())))
    assert out["reference/absent/f1"] == 0.0
    assert out["reference/random/score"] == pytest.approx(
        (out["reference/random/f1"] + out["reference/random/accuracy"]) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuned_thresholds_maximize_each_aus_f1_on_the_grid(seed: int) -> None:
    labels, probs = _random(seed)
    probs = np.clip(probs + 0.3 * (labels == 1), 0, 1)  # some signal, so thresholds differ
    labels[:, 2] = np.where(labels[:, 2] == 1, 0, labels[:, 2])  # an AU without positives
    thr = tune_thresholds(labels, probs, default=0.42)
    assert thr.shape == (labels.shape[1],) and thr[2] == 0.42
    by_grid = np.stack([au_metrics(labels, probs, float(t)).f1 for t in THRESHOLD_GRID])
    for a in (0, 1, 3, 4, 5):
        best = by_grid[:, a].max()
        # the lowest grid threshold with the best F1 (scikit-learn agrees at that threshold)
        assert thr[a] == THRESHOLD_GRID[np.flatnonzero(by_grid[:, a] == best)[0]]
        coded = labels[:, a] >= 0
        assert best == pytest.approx(f1_score(labels[coded, a], probs[coded, a] > thr[a],
                                              zero_division=F1_ZERO_DIVISION))
    assert len(set(thr.tolist())) > 2
    # per-AU thresholds go through every metric: F1 at them is >= F1 at 0.5 on these frames
    assert validation_f1(labels, probs, thr) >= validation_f1(labels, probs, 0.5)
    rows = participant_rows(np.zeros(len(labels)), labels, probs, [f"AU{i}" for i in range(6)],
                            thr)
    assert [r["f1"] for r in rows] == pytest.approx(au_metrics(labels, probs, thr).f1.tolist())
