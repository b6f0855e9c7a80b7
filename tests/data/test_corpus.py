"""The corpus format: round trips, validation, one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfn.data.corpus import (
    AUS,
    SubjectData,
    data_version,
    read_manifest,
    read_subject,
    read_subjects,
    skin_group,
    write_subject,
)
from deepfn.errors import DeepFNError
from tests.conftest import make_corpus, make_subject


def test_round_trip_keeps_arrays_and_unknown_labels(tmp_path: Path) -> None:
    s = make_subject("SN001", disfa=True)
    write_subject(tmp_path, s)
    r = read_subject(tmp_path, "SN001")
    for name in ("images", "occurrence", "intensity", "sequence", "frame"):
        np.testing.assert_array_equal(getattr(r, name), getattr(s, name))
    assert (r.occurrence[:, AUS.index(7)] == -1).all()  # not coded stays -1


def test_skin_groups_follow_the_paper() -> None:
    assert [skin_group(t) for t in range(1, 7)] == [
        "lighter", "lighter", None, None, "darker", "darker"]


def test_subject_data_rejects_bad_shapes_and_values() -> None:
    s = make_subject("F001")
    with pytest.raises(DeepFNError, match="occurrence must have shape"):
        SubjectData("F001", s.images, s.occurrence[:, :5], s.intensity, s.sequence, s.frame)
    bad = s.intensity.copy()
    bad[0, 0] = 7
    with pytest.raises(DeepFNError, match="intensity values must be -1 or 0..5"):
        SubjectData("F001", s.images, s.occurrence, bad, s.sequence, s.frame)
    with pytest.raises(DeepFNError, match="images must be uint8"):
        SubjectData("F001", s.images.astype(float), s.occurrence, s.intensity, s.sequence,
                    s.frame)


def test_missing_and_corrupt_subject_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DeepFNError, match=r"F001\.npz: no data for subject F001"):
        read_subject(tmp_path, "F001")
    (tmp_path / "F002.npz").write_bytes(b"")
    with pytest.raises(DeepFNError, match=r"F002\.npz: corrupt subject file"):
        read_subject(tmp_path, "F002")
    (tmp_path / "F003.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DeepFNError, match=r"F003\.npz: corrupt"):
        read_subject(tmp_path, "F003")


def test_subjects_table_validation(tmp_path: Path) -> None:
    root = make_corpus(tmp_path / "c", ["F001", "M001", "SN001"])
    df = read_subjects(root / "subjects.csv")
    assert list(df.index) == ["F001", "M001", "SN001"]
    assert df.loc["SN001", "dataset"] == "disfa"
    bad = df.copy()
    bad.loc["M001", "skin_type"] = 9
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DeepFNError, match="M001 has skin_type 9; allowed: 1..6"):
        read_subjects(tmp_path / "bad.csv")
    pd.DataFrame({"subject": ["F001"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(DeepFNError, match="missing column"):
        read_subjects(tmp_path / "cols.csv")


def test_data_version_changes_with_content(tmp_path: Path) -> None:
    a = make_corpus(tmp_path / "a", ["F001", "M001"])
    b = make_corpus(tmp_path / "b", ["F001", "M001"])
    assert data_version(a) == data_version(b)
    assert read_manifest(a)["aus"] == list(AUS)
    c = make_corpus(tmp_path / "c", ["F001", "M002"])
    assert data_version(c) != data_version(a)


def test_identical_arrays_give_identical_bytes(tmp_path: Path) -> None:
    s = make_subject("F001")
    a = write_subject(tmp_path / "a", s).read_bytes()
    b = write_subject(tmp_path / "b", s).read_bytes()
    assert a == b
