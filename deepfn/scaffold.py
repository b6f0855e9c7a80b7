"""A scratch copy of this project at smoke scale: what ``make smoke`` and the end-to-end test run.

The roster lives in ``params.yaml`` (``dvc.yaml``'s ``foreach`` reads it), so a smoke run needs
its own ``params.yaml`` -- the smoke profile plus :data:`~deepfn.config.profiles.SMOKE_ROSTER` --
and, so that your workspace's outputs, ``dvc.lock`` and MLflow store stay as they are, its own
directory::

    deepfn smoke-project .smoke && cd .smoke && dvc repro
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from deepfn.config.profiles import SMOKE_ROSTER
from deepfn.errors import DeepFNError

__all__ = ["write_smoke_project", "COPIED"]

COPIED = ("deepfn", "pipelines", "dvc.yaml", ".dvcignore")


def write_smoke_project(dest: str | Path, repo: str | Path = ".", dvc: str = "dvc") -> Path:
    """Copy the pipeline into ``dest`` (replacing it) with smoke ``params.yaml``; init git + DVC."""
    repo, dest = Path(repo).resolve(), Path(dest).resolve()
    missing = [n for n in (*COPIED, "params.yaml") if not (repo / n).exists()]
    if missing:
        raise DeepFNError(f"{repo}: not a deepfn checkout (missing {', '.join(missing)}); run "
                          "this from the project root")
    if dest == repo or dest in repo.parents or (dest.parent == repo and dest.name in COPIED):
        raise DeepFNError(f"{dest}: would overwrite the project itself; pick another directory")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profile"] = "smoke"
    params["synthesize"]["subjects"] = list(SMOKE_ROSTER)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _fill(tmp, repo, params, dvc)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
        raise
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def _fill(tmp: Path, repo: Path, params: dict[str, Any], dvc: str) -> None:
    for name in COPIED:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, tmp / name)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"],
                [dvc, "config", "core.analytics", "false"]):
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise DeepFNError(f"{' '.join(cmd)} failed in {tmp}: {proc.stderr.strip()[-300:]}")
