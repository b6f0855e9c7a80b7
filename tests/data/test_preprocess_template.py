"""Preprocessing (kornia equalization + resize) and the paper's template rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfn.config.settings import PreprocessSettings, TemplateSettings
from deepfn.data.corpus import (
    AUS,
    SubjectData,
    read_manifest,
    read_subject,
    write_manifest,
    write_subject,
    write_subjects,
)
from deepfn.data.preprocess import equalize_resize, preprocess_corpus
from deepfn.data.template import activation_counts, most_expressive, select_template
from deepfn.errors import DeepFNError
from tests.conftest import make_corpus


def test_equalize_spreads_a_low_contrast_image_over_the_range() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(100, 120, size=(2, 64, 64), dtype=np.uint8)
    out, full = equalize_resize(img, [32, 64])
    assert out.shape == (2, 32, 32) and out.dtype == np.uint8
    assert full.shape == (2, 64, 64) and full.max() - full.min() > 150
    assert out.std() > 3 * img.std()  # stretched from a 20-level range
    (same,) = equalize_resize(img, [64], equalize=False)
    np.testing.assert_array_equal(same, img)


def test_preprocess_writes_two_resolutions(tmp_path: Path) -> None:
    raw = make_corpus(tmp_path / "raw", ["F001", "SN001"], size=64)
    info = preprocess_corpus(raw, tmp_path / "pre", PreprocessSettings(ae_size=32, clf_size=40),
                             progress=False)
    assert info == {"subjects": 2, "frames": 64}
    assert read_subject(tmp_path / "pre/ae", "F001").images.shape[1:] == (32, 32)
    clf = read_subject(tmp_path / "pre/clf", "SN001")
    assert clf.images.shape[1:] == (40, 40)
    np.testing.assert_array_equal(clf.occurrence, read_subject(raw, "SN001").occurrence)
    assert read_manifest(tmp_path / "pre/clf")["image_size"] == 40


def test_preprocess_leaves_nothing_on_a_corrupt_subject(tmp_path: Path) -> None:
    raw = make_corpus(tmp_path / "raw", ["F001", "M001"], size=32)
    (raw / "M001.npz").write_bytes(b"not a zip")
    with pytest.raises(DeepFNError, match="M001.npz: corrupt"):
        preprocess_corpus(raw, tmp_path / "pre", PreprocessSettings(ae_size=32, clf_size=32),
                          progress=False)
    assert not (tmp_path / "pre").exists()
    assert not list(tmp_path.glob(".pre*"))


def _labelled(sid: str, per_au: list[int]) -> SubjectData:
    n = 20
    occ = np.zeros((n, len(AUS)), dtype=np.int8)
    for j, k in enumerate(per_au):
        occ[:k, j] = 1
    return SubjectData(sid, np.zeros((n, 8, 8), np.uint8), occ, occ.copy(),
                       np.array(["T1"] * n), np.arange(n, dtype=np.int32))


def test_template_is_the_highest_median_activation_count(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    # F001: many activations in few AUs (high total, low median); M001: broad (high median).
    subjects = {"F001": [20] * 3 + [0] * 9, "M001": [5] * 12, "F002": [2] * 12}
    for sid, counts in subjects.items():
        write_subject(root, _labelled(sid, counts))
    write_subject(root, _labelled("SN001", [20] * 12))  # DISFA never becomes the template
    rows = [{"subject": s, "dataset": "disfa" if s.startswith("SN") else "bp4d",
             "gender": "M" if s[0] == "M" else "F", "skin_type": 3, "expressivity": 1.0}
            for s in [*subjects, "SN001"]]
    write_subjects(root / "subjects.csv", pd.DataFrame(rows))
    write_manifest(root, source="test", image_size=8, subjects=[*subjects, "SN001"])
    counts = activation_counts(root, list(subjects))
    assert counts.loc["F001"].sum() == 60 and counts.loc["M001"].median() == 5
    assert most_expressive(counts) == "M001"
    result = select_template(root, tmp_path / "tpl", TemplateSettings())
    assert result["subject"] == "M001"
    saved = json.loads((tmp_path / "tpl/template.json").read_text())
    assert saved["subject"] == "M001" and saved["medians"]["F001"] == 0
    assert read_subject(tmp_path / "tpl", "M001").n_frames == 20
    forced = select_template(root, tmp_path / "tpl2", TemplateSettings(subject="F002"))
    assert forced["subject"] == "F002" and "forced" in forced["rule"]
