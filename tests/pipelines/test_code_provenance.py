"""Results follow the code: an edit to the model in a smoke project trains new runs, a rerun of
unchanged code adds none, and reverting the edit finds the earlier runs again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepfn.tracking import EXPERIMENT_AU
from deepfn.tracking.provenance import TAG_CODE_FINGERPRINT

from .conftest import BIN, run

pytestmark = pytest.mark.slow
DVC = str(BIN / "dvc")


def _manifest_ids(project: Path) -> set[str]:
    return {r["run_id"] for r in json.loads((project / "results/experiments.json").read_text())
            ["runs"]}


def _model_runs(project: Path) -> dict[str, str]:
    """run_id -> code fingerprint of every model run in the project's MLflow store."""
    import mlflow

    c = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlruns/mlflow.db")
    exp = c.get_experiment_by_name(EXPERIMENT_AU)
    runs = c.search_runs([exp.experiment_id], "tags.kind = 'model'", max_results=50_000)
    assert len(runs) < 50_000
    return {r.info.run_id: r.data.tags[TAG_CODE_FINGERPRINT] for r in runs}


def test_model_code_edit_trains_new_runs_and_revert_finds_the_old(smoke_project: Path) -> None:
    lenet = smoke_project / "deepfn/au/lenet.py"
    source = lenet.read_text()
    first = _manifest_ids(smoke_project)
    runs0 = _model_runs(smoke_project)
    assert first <= set(runs0)
    try:
        # a model change that changes the numbers (fc2 width 84 -> 100)
        edited = source.replace("nn.Linear(120, 84)", "nn.Linear(120, 100)").replace(
            "nn.Linear(84, n_aus)", "nn.Linear(100, n_aus)")
        assert edited != source
        lenet.write_text(edited)
        out = run([DVC, "repro"], smoke_project).stdout
        assert "Running stage 'experiments'" in out, out
        second = _manifest_ids(smoke_project)
        runs1 = _model_runs(smoke_project)
        assert len(second) == len(first) and not second & first  # every run retrained
        assert len(runs1) == len(runs0) + len(second)
        assert {runs1[r] for r in second} != {runs0[r] for r in first}  # a new fingerprint

        # unchanged code: the stage runs again (forced) and finds every run
        run([DVC, "repro", "--single-item", "--force", "experiments"], smoke_project)
        assert _manifest_ids(smoke_project) == second
        assert len(_model_runs(smoke_project)) == len(runs1)
    finally:
        lenet.write_text(source)
    # reverted: DVC may restore the manifest from its run cache; forced, the stage itself
    # finds the earlier runs under their keys
    run([DVC, "repro"], smoke_project)
    assert _manifest_ids(smoke_project) == first
    run([DVC, "repro", "--single-item", "--force", "experiments"], smoke_project)
    assert _manifest_ids(smoke_project) == first
    assert len(_model_runs(smoke_project)) == len(runs1)
    assert "up to date" in run([DVC, "status"], smoke_project).stdout.lower()
