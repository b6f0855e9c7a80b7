"""Diagnostics: the probes on data with a known answer, splits, group averages and Fig. 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfn.data.corpus import AUS
from deepfn.normalizer.diagnostics import (
    GroupAverages,
    ProbeSet,
    downsample,
    expression_markdown,
    expression_probe,
    fig2_group_averages,
    identity_probe,
    per_au_preservation,
    split_mask,
    summarize,
)


def test_split_mask_alternates_sequences_or_halves_a_single_one():
    seq = np.array(["T1", "T1", "T2", "T2", "T3", "T3"])
    assert split_mask(seq).tolist() == [True, True, False, False, True, True]
    assert split_mask(np.array(["V1"] * 5)).tolist() == [True, True, False, False, False]


def test_downsample_area_averages_to_16x16():
    img = np.zeros((1, 32, 32), dtype=np.uint8)
    img[0, :2, :2] = 255
    feats = downsample(img)
    assert feats.shape == (1, 256)
    assert feats[0, 0] == pytest.approx(1.0) and feats[0, 1:].max() == 0.0


def test_identity_probe_separable_vs_identical():
    rng = np.random.default_rng(0)
    subject = np.repeat(np.arange(4), 50)
    train = np.tile(np.r_[np.ones(25, bool), np.zeros(25, bool)], 4)
    separable = rng.normal(size=(200, 8)) * 0.1 + subject[:, None]
    assert identity_probe(separable, subject, train) == pytest.approx(1.0)
    noise = rng.normal(size=(200, 8))  # no subject information: about chance (0.25)
    assert identity_probe(noise, subject, train) < 0.45


def test_expression_probe_recovers_a_linear_code_and_skips_uncoded_aus():
    rng = np.random.default_rng(0)
    n = 200
    intensity = np.full((n, len(AUS)), -1, dtype=np.int8)
    intensity[:, 0] = rng.integers(0, 6, n)          # AU01 coded
    x = np.c_[intensity[:, :1].astype(float), rng.normal(size=(n, 5))]
    train = np.arange(n) < n // 2
    r = expression_probe(x, intensity, train)
    assert set(r) == {"AU01"}
    assert r["AU01"] > 0.99


def test_summarize_before_after():
    rng = np.random.default_rng(1)
    probes = ProbeSet()
    for i in range(3):
        base = rng.integers(0, 256, size=(1, 32, 32))
        before = np.clip(base + rng.integers(-5, 6, size=(20, 32, 32)), 0, 255).astype(np.uint8)
        after = rng.integers(0, 256, size=(20, 32, 32)).astype(np.uint8)
        intensity = rng.integers(0, 6, size=(20, len(AUS))).astype(np.int8)
        probes.add(i, before, after, intensity, np.repeat(["T1", "T2", "T3", "T4"], 5))
    out = summarize(probes, 3)
    assert out["identity_accuracy"]["chance"] == pytest.approx(1 / 3)
    assert out["identity_accuracy"]["before"] == pytest.approx(1.0)
    assert out["identity_accuracy"]["after"] < 0.8


def test_group_averages_and_fig2(tmp_path: Path):
    groups = GroupAverages(size=16)
    dark = np.full((4, 16, 16), 40, dtype=np.uint8)
    light = np.full((4, 16, 16), 200, dtype=np.uint8)
    same = np.full((4, 16, 16), 120, dtype=np.uint8)
    groups.add({"gender": "F", "skin_type": 6, "dataset": "bp4d"}, dark, same)
    groups.add({"gender": "M", "skin_type": 1, "dataset": "bp4d"}, light, same)
    assert groups.subjects == {"female": 1, "darker": 1, "bp4d": 2, "male": 1, "lighter": 1}
    assert groups.mean("bp4d", "before").mean() == pytest.approx(120.0)
    gaps = groups.gaps()
    assert gaps["gender"] == {"before": pytest.approx(160.0), "after": pytest.approx(0.0)}
    assert "dataset" not in gaps  # no disfa subject
    png = fig2_group_averages(groups, tmp_path / "fig2.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_per_au_preservation_says_which_aus_survive_normalization():
    """AU01 is in the pixels before and after, AU02 only before: AU02 is reported lost."""
    rng = np.random.default_rng(2)
    probes = ProbeSet()
    for i in range(4):
        intensity = np.full((40, len(AUS)), -1, dtype=np.int8)
        intensity[:, :2] = rng.integers(0, 6, size=(40, 2))
        before = rng.integers(0, 40, size=(40, 16, 16))
        after = rng.integers(0, 40, size=(40, 16, 16))
        before[:, :8, :] += 40 * intensity[:, 0, None, None]   # AU01 top half, both
        after[:, :8, :] += 40 * intensity[:, 0, None, None]
        before[:, 8:, :] += 40 * intensity[:, 1, None, None]   # AU02 bottom half, before only
        probes.add(i, before.astype(np.uint8), after.astype(np.uint8), intensity,
                   np.repeat(["T1", "T2", "T3", "T4"], 10))
    out = summarize(probes, 4)
    per_au = out["expression_per_au"]
    assert set(per_au) == {"AU01", "AU02"}
    assert per_au["AU01"]["carried"] is True and per_au["AU01"]["kept"] > 0.9
    assert per_au["AU02"]["before"] > 0.9 and per_au["AU02"]["carried"] is False
    assert per_au["AU02"]["cross_before"] > 0.9 and per_au["AU02"]["cross_after"] < 0.5
    md = expression_markdown({"n_subjects": 4, "template_subject": "F001", **out})
    assert "| AU02 |" in md and "**no**" in md
    assert "Carried: AU01; lost: AU02." in md


def test_per_au_preservation_leaves_unreadable_aus_undecided():
    within = {"before": {"AU01": 0.02, "AU04": 0.6}, "after": {"AU01": 0.3, "AU04": 0.2}}
    cross = {"before": {"AU04": 0.5}, "after": {}}
    out = per_au_preservation(within, cross)
    assert out["AU01"]["kept"] is None and out["AU01"]["carried"] is None
    assert out["AU04"]["kept"] == pytest.approx(1 / 3) and out["AU04"]["carried"] is False
    assert out["AU04"]["cross_after"] is None
