"""Fixtures for the stats tests: real MLflow sqlite stores, copied from one built per session.

Creating an MLflow sqlite database runs its schema migrations (~5 s), so an empty one is made
once and copied into each test's ``tmp_path``; ``MLFLOW_TRACKING_URI`` points at the copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.stats.synthetic_runs import write_synthetic_store


def copy_store(src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture
def store(blank_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty store of our own: its tracking URI (also set as MLFLOW_TRACKING_URI)."""
    return copy_store(blank_db, tmp_path, monkeypatch)


def make_synthetic_db(blank_db: Path, tmp_path_factory: pytest.TempPathFactory, name: str,
                      **kwargs: Any) -> tuple[Path, list[dict[str, object]]]:
    """A copy of the blank store filled by :func:`write_synthetic_store` (``kwargs``): its path
    and the manifest entries."""
    db = tmp_path_factory.mktemp(name) / "mlflow.db"
    shutil.copyfile(blank_db, db)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
        entries = write_synthetic_store(f"sqlite:///{db}", **kwargs)
    return db, entries


@pytest.fixture(scope="session")
def synthetic_db(blank_db: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, list[dict[str, object]]]:
    """28 synthetic model runs (1 repetition, all splits) around the paper's means."""
    return make_synthetic_db(blank_db, tmp_path_factory, "synthetic", repetitions=1, seed=1)


def write_manifest(path: Path, uri: str, entries: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiment": "deepfn-au", "tracking_uri": uri,
                                "data_version": "test", "runs": entries}))
    return path


@pytest.fixture
def synthetic_store(synthetic_db: tuple[Path, list[dict[str, object]]], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A copy of the synthetic store and its manifest ``results/experiments.json``."""
    db, entries = synthetic_db
    uri = copy_store(db, tmp_path, monkeypatch)
    return uri, write_manifest(tmp_path / "results" / "experiments.json", uri, entries)


@pytest.fixture
def log_run(store: str):
    """``log_run(group, evaluation, normalization, repetition, scores, ...) -> run_id``."""
    from deepfn.tracking import EXPERIMENT_AU, Store
    from tests.stats.synthetic_runs import log_model_run

    s = Store(store)
    c, exp = s.client, s.experiment_id(EXPERIMENT_AU)

    def log(group: str, evaluation: str, normalization: str, repetition: int,
            scores: dict[str, float], *, train: str = "others", test: str = "others",
            aus: dict[str, float] | None = None, status: str = "FINISHED") -> str:
        tags = {"group": group, "evaluation": evaluation, "normalization": normalization,
                "repetition": str(repetition), "split_seed": str(100 + repetition),
                "train_group": train, "test_group": test, "profile": "test",
                "data_version": "dv1", "git_commit": "abc"}
        return log_model_run(c, exp, tags=tags, participants=scores, aus=aus, status=status)

    return log
