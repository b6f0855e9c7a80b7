"""End to end on the smoke project: the experiments stage with ``compute.engine: ray`` (a local
Ray cluster of its own) gives the local engine's run keys and the same Table 5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, uri: str) -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg",
           "MLFLOW_TRACKING_URI": uri, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def test_ray_engine_gives_the_same_run_keys_and_table5(smoke_project: Path,
                                                       tmp_path: Path) -> None:
    params = yaml.safe_load((smoke_project / "params.yaml").read_text())
    params["compute"] = {**(params.get("compute") or {}), "engine": "ray", "address": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"  # a store of its own: everything retrains
    py = str(BIN / "python")
    _run([py, "-m", "pipelines.experiments", "--original", "data/preprocessed/clf",
          "--normalized", "data/normalized", "--template", "data/template/template.json",
          "--out", str(tmp_path / "experiments.json"), "--params", str(tmp_path / "params.yaml")],
         smoke_project, uri)
    _run([py, "-m", "pipelines.stats", "--manifest", str(tmp_path / "experiments.json"),
          "--out", str(tmp_path / "reports"), "--params", str(tmp_path / "params.yaml")],
         smoke_project, uri)
    local = json.loads((smoke_project / "results/experiments.json").read_text())
    ray = json.loads((tmp_path / "experiments.json").read_text())
    assert ray["tracking_uri"] == uri and ray["runs"]
    assert sorted(r["run_key"] for r in ray["runs"]) == sorted(r["run_key"] for r in local["runs"])
    assert (tmp_path / "reports/table5.md").read_text() == \
        (smoke_project / "reports/table5.md").read_text()
