"""Metadata CSV: Fitzpatrick skin types written 1..6 or I..VI."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfn.data.importers import read_metadata
from deepfn.data.importers.common import parse_skin_type
from deepfn.errors import DeepFNError


@pytest.mark.parametrize("text, value", [
    ("1", 1), ("6", 6), (" 3 ", 3), ("4.0", 4),
    ("I", 1), ("ii", 2), ("III", 3), ("iV", 4), ("V", 5), ("VI", 6),
    (" vi ", 6), ("V I", 6), ("I I I", 3),
])
def test_parse_skin_type_accepts_arabic_and_roman(text: str, value: int) -> None:
    assert parse_skin_type(text) == value


@pytest.mark.parametrize("text", ["", "0", "7", "VII", "IIII", "IIV", "X", "2.5", "one", "-1"])
def test_parse_skin_type_rejects_the_rest(text: str) -> None:
    assert parse_skin_type(text) is None


def test_csv_with_roman_and_arabic_types(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text("subject,gender,skin_type\nF001,F,II\nM001,M,v\nSN001,F, 3\nSN002,M,V I\n")
    df = read_metadata(path)
    assert df["skin_type"].to_dict() == {"F001": 2, "M001": 5, "SN001": 3, "SN002": 6}
    assert df["skin_type"].dtype.kind == "i"


@pytest.mark.parametrize("bad", ["VII", "7", "IIII", "fair"])
def test_bad_skin_type_names_file_subject_and_both_spellings(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "meta.csv"
    path.write_text(f"subject,gender,skin_type\nF001,F,II\nM001,M,{bad}\n")
    with pytest.raises(DeepFNError) as err:
        read_metadata(path)
    msg = str(err.value)
    assert str(path) in msg and f"M001 has skin_type {bad!r}" in msg
    assert "1..6" in msg and "I..VI" in msg
