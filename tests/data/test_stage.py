"""The synthesize stage on licensed data, through the CLI and the pipeline entrypoint alike."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deepfn.cli import app
from deepfn.data.corpus import read_manifest, read_subjects

from .test_importers import make_bp4d, write_metadata


def _licensed_project(root: Path, subjects: list[str], skin: int = 5) -> Path:
    bp4d = make_bp4d(root)  # F001 and M001
    meta = write_metadata(root / "meta.csv", [("F001", "F", 2), ("M001", "M", skin)])
    (root / "params.yaml").write_text(yaml.safe_dump({"synthesize": {
        "source": "licensed", "subjects": subjects, "bp4d_root": str(bp4d),
        "metadata": str(meta), "detector": "none", "image_size": 32}}))
    return root


@pytest.mark.parametrize("command", [["synthesize"], ["synth"]])
def test_cli_imports_licensed_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   command: list[str]) -> None:
    monkeypatch.chdir(_licensed_project(tmp_path, ["F001", "M001"]))
    res = CliRunner().invoke(app, command)
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == "synthesize: 2 subjects (licensed) -> data/raw"
    assert read_manifest("data/raw")["source"] == "licensed"
    assert list(read_subjects("data/raw/subjects.csv").index) == ["F001", "M001"]


def test_roster_mismatch_is_refused_and_keeps_the_previous_corpus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(_licensed_project(tmp_path, ["F001", "M001"]))
    main = importlib.import_module("pipelines.synthesize").main
    assert main(["--out", "data/raw"]) == 0
    before = {p.name: p.read_bytes() for p in Path("data/raw").iterdir()}
    _licensed_project(tmp_path, ["F001", "M002"], skin=6)  # would change subjects.csv
    capsys.readouterr()
    assert main(["--out", "data/raw"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: params.yaml: synthesize.subjects does not match the imported corpus "
                   "(not listed: M001; not found: M002); set synthesize.subjects to the "
                   "imported ids"]
    assert {p.name: p.read_bytes() for p in Path("data/raw").iterdir()} == before
    assert [p.name for p in Path("data").iterdir()] == ["raw"]  # no temp dirs left
