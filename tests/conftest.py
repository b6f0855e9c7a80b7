"""Shared fixtures: tiny corpora written in the real format, a real MLflow sqlite store, a local
Ray cluster."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfn.compute.engine import RayCluster
from deepfn.data.corpus import AUS, SubjectData, write_manifest, write_subject, write_subjects


def make_subject(sid: str, n_seq: int = 8, per_seq: int = 4, size: int = 32,
                 seed: int = 0, disfa: bool = False) -> SubjectData:
    rng = np.random.default_rng(seed)
    n = n_seq * per_seq
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    intensity = rng.integers(0, 6, size=(n, len(AUS))).astype(np.int8)
    occurrence = (intensity >= (2 if disfa else 1)).astype(np.int8)
    if disfa:
        keep = np.isin(AUS, (1, 2, 4, 6, 12))
        intensity[:, ~keep] = -1
        occurrence[:, ~keep] = -1
        sequence = np.array(["V1"] * n)
    else:
        sequence = np.repeat([f"T{i + 1}" for i in range(n_seq)], per_seq)
    frame = np.tile(np.arange(per_seq, dtype=np.int32), n_seq)
    return SubjectData(sid, images, occurrence, intensity, sequence, frame)


def make_corpus(root: Path, subjects: list[str], size: int = 32, per_seq: int = 4) -> Path:
    """A corpus directory with random frames for ``subjects`` (F/M -> bp4d, SN -> disfa)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sid in enumerate(subjects):
        disfa = sid.startswith("SN")
        write_subject(root, make_subject(sid, size=size, seed=i, disfa=disfa, per_seq=per_seq))
        rows.append({"subject": sid, "dataset": "disfa" if disfa else "bp4d",
                     "gender": "M" if sid.startswith("M") else "F",
                     "skin_type": 1 + i % 6, "expressivity": 1.0})
    write_subjects(root / "subjects.csv", pd.DataFrame(rows))
    write_manifest(root, source="test", image_size=size, subjects=subjects)
    return root


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def blank_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow sqlite database: copy it to get a new store (migrating a new
    one takes seconds)."""
    from deepfn.tracking import Store

    db = tmp_path_factory.mktemp("blank") / "mlflow.db"
    Store(f"sqlite:///{db}").client.search_experiments()
    return db


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One local Ray cluster for the test session (2 CPUs, no dashboard, on 127.0.0.1, token
    authentication on with a token of its own): started by the first test that asks for it."""
    # before ray is imported: its config reads the mode once (the token stays out of ~/.ray)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    from deepfn.compute.engine import require_ray
    from deepfn.errors import DeepFNError

    try:
        ray = require_ray(None)  # sets the loopback-only switch before importing ray
    except DeepFNError as exc:
        pytest.skip(str(exc))
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="WARNING")
    try:
        res = ray.cluster_resources()
        yield RayCluster(address=ray.get_runtime_context().gcs_address,
                         cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)),
                         local=True)
    finally:
        ray.shutdown()
