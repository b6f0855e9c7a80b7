"""The smoke project every end-to-end test shares: one real ``dvc repro`` per session (~80 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepfn.scaffold import write_smoke_project

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with this venv first on PATH (stages call ``python``) and no
    ``MLFLOW_TRACKING_URI`` (the project's own store)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MPLBACKEND": "Agg"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def smoke_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of this checkout (deepfn.scaffold) after one full ``dvc repro``.

    A test that changes the project leaves it up to date again (``dvc status`` clean).
    test_code_provenance.py runs first (file order): test_dvc_smoke.py's remote round trip
    empties the DVC cache, after which every stage would rerun."""
    root = write_smoke_project(tmp_path_factory.mktemp("project") / "smoke", REPO,
                               dvc=str(BIN / "dvc"))
    assert yaml.safe_load((root / "params.yaml").read_text())["profile"] == "smoke"
    run([str(BIN / "dvc"), "repro"], root)
    return root
