"""End to end: a real ``dvc repro`` of the whole pipeline on the smoke profile in tmp_path.

Checks the stage graph, that a second ``dvc repro`` does nothing, that the MLflow store holds the
runs the stats stage read, and that the corpus round-trips through a local DVC remote.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from deepfn.config import profiles
from deepfn.normalizer.methods import BASELINES, TRANSFERRED
from deepfn.normalizer.methods import LABELS as METHOD_LABELS
from tests.pipelines.conftest import run as _run

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The smallest roster that gives every group split of the smoke protocol (2 train, 1 val,
# >= 1 test per group) enough subjects after the template is excluded (`make smoke` runs it).
SMOKE_ROSTER = list(profiles.SMOKE_ROSTER)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(smoke_project: Path) -> Path:  # tests/pipelines/conftest.py
    return smoke_project


def test_repro_builds_every_stage(project: Path) -> None:
    assert (project / "data/raw/manifest.json").is_file()
    subjects = set(json.loads((project / "data/raw/manifest.json").read_text())["subjects"])
    assert subjects == set(SMOKE_ROSTER)
    for sid in SMOKE_ROSTER:
        assert (project / f"models/normalizers/{sid}.pt").is_file()
        for method in TRANSFERRED:  # one DVC out per method
            assert (project / f"data/normalized/{method}/{sid}.npz").is_file()
    template = json.loads((project / "data/template/template.json").read_text())["subject"]
    assert template in SMOKE_ROSTER and not template.startswith("SN")
    manifest = json.loads((project / "results/experiments.json").read_text())
    assert manifest["runs"]
    # every method of params.yaml was trained and tagged, and has its Table 5 column pair
    listed = tuple(yaml.safe_load((project / "params.yaml").read_text())["experiments"]
                   ["normalizations"])
    assert {r["normalization"] for r in manifest["runs"]} == set(listed)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")
    tagged = {client.get_run(r["run_id"]).data.tags["normalization"] for r in manifest["runs"]}
    assert tagged == set(listed)
    table5 = (project / "reports/table5.md").read_text()
    for method in listed:
        if method in BASELINES:
            assert f"{METHOD_LABELS[method]} ind. ± SE" in table5
    assert (project / "reports/report.md").is_file()
    assert (project / "reports/table5.csv").is_file()
    assert (project / "mlruns/mlflow.db").is_file()


def test_second_repro_is_a_no_op(project: Path) -> None:
    out = _run([str(BIN / "dvc"), "repro"], project)
    assert "Running stage" not in out.stdout, out.stdout
    status = _run([str(BIN / "dvc"), "status"], project)
    assert "up to date" in status.stdout.lower()


def test_metrics_show_prints_the_headline_numbers(project: Path) -> None:
    out = _run([str(BIN / "dvc"), "metrics", "show", "--json"], project)
    data = json.loads(out.stdout)
    assert data, out.stdout


def test_changing_one_subject_reruns_only_its_normalizer(project: Path) -> None:
    out = _run([str(BIN / "dvc"), "status", "normalize@F001"], project)
    assert "up to date" in out.stdout.lower()
    # dvc's dry run lists the stages that would run if F001's preprocessed frames changed
    target = project / "data/preprocessed/ae/F001.npz"
    backup = target.read_bytes()
    try:
        target.unlink()
        shutil.copy(project / "data/preprocessed/ae/F003.npz", target)
        status = _run([str(BIN / "dvc"), "status", "--json"], project).stdout
        changed = set(json.loads(status))
        normalizers = {s for s in changed if s.startswith("normalize@")}
        assert normalizers == {"normalize@F001"}, changed
    finally:
        target.unlink()
        target.write_bytes(backup)


def test_corpus_round_trips_through_a_local_remote(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    _run([str(BIN / "dvc"), "remote", "add", "-f", "-d", "local", str(remote)], project)
    _run([str(BIN / "dvc"), "push", "synthesize"], project)
    before = (project / "data/raw/F001.npz").read_bytes()
    shutil.rmtree(project / "data/raw")
    shutil.rmtree(project / ".dvc/cache")
    _run([str(BIN / "dvc"), "pull", "synthesize"], project)
    assert (project / "data/raw/F001.npz").read_bytes() == before
