"""deepfn.scaffold: the smoke project copy (its dvc repro is tests/pipelines/test_dvc_smoke.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfn.errors import DeepFNError
from deepfn.scaffold import write_smoke_project

REPO = Path(__file__).resolve().parents[1]


def test_outside_a_checkout_is_one_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(DeepFNError, match="not a deepfn checkout"):
        write_smoke_project(tmp_path / "smoke", repo=tmp_path)
    assert not (tmp_path / "smoke").exists() and not (tmp_path / "smoke.tmp").exists()


@pytest.mark.parametrize("dest", [".", "deepfn", ".."])
def test_it_refuses_to_overwrite_the_project(dest: str) -> None:
    with pytest.raises(DeepFNError, match="overwrite the project"):
        write_smoke_project(REPO / dest, repo=REPO)


def test_a_failing_init_leaves_no_half_written_copy(tmp_path: Path) -> None:
    with pytest.raises(DeepFNError, match="false init -q failed"):
        write_smoke_project(tmp_path / "smoke", repo=REPO, dvc="false")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
