"""``deepfn fanout normalize`` on the smoke project (engine ray, the session's local Ray cluster)
against the same project's local ``dvc repro``: same model bytes, same run keys, no new MLflow
runs; DVC records the fan-out (``dvc status`` clean, ``dvc repro`` a no-op)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from deepfn.compute.engine import RayCluster
from deepfn.compute.fanout import fanout_normalize
from deepfn.config import load_settings
from deepfn.config.profiles import SMOKE_ROSTER
from tests.pipelines.conftest import run

BIN = Path(sys.executable).parent
STALE = [SMOKE_ROSTER[1], SMOKE_ROSTER[6], SMOKE_ROSTER[-1]]  # one F, one M, one SN

pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _normalize_runs(project: Path) -> list[tuple[str, str]]:
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("deepfn-normalizer")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'normalize'")
    return sorted((r.data.tags["subject"], r.data.tags["run_key"]) for r in runs)


def _set_engine(project: Path, engine: str) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["compute"]["engine"] = engine
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_fanout_matches_the_local_engine_and_dvc_records_it(
        smoke_project: Path, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    project = smoke_project
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")  # dvc's stages
    local = {s: _sha(project / f"models/normalizers/{s}.pt") for s in SMOKE_ROSTER}
    runs = _normalize_runs(project)
    assert len(runs) == len(SMOKE_ROSTER)
    _set_engine(project, "ray")
    try:
        # the normalize stage itself refuses with engine ray, naming the command to run
        refused = run([str(BIN / "deepfn"), "normalize", "--subject", STALE[0]], project,
                      check=False)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "error: compute.engine: ray runs the normalizers on the Ray cluster: run `deepfn "
            "fanout normalize`, then `dvc repro` (or set compute.engine: local to train them "
            "here)"]
        for s in STALE:  # as if these had never run (or the driver was killed before them)
            (project / f"models/normalizers/{s}.pt").unlink()
        lines: list[str] = []
        summary = fanout_normalize(load_settings(project / "params.yaml"), project,
                                   echo=lines.append)
    finally:
        _set_engine(project, "local")
    assert sorted(summary.done) == sorted(STALE), lines  # only what was left
    assert summary.logged == 0  # their run keys were FINISHED already: no duplicates
    assert {s: _sha(project / f"models/normalizers/{s}.pt") for s in SMOKE_ROSTER} == local
    assert _normalize_runs(project) == runs
    status = json.loads(run([str(BIN / "dvc"), "status", "--json"], project).stdout or "{}")
    assert status == {}, status
    out = run([str(BIN / "dvc"), "repro"], project)
    assert "Running stage" not in out.stdout, out.stdout
