"""Tiny corpora for the AU tests: an original and a "normalized" copy in the corpus format.

BP4D-like: F001-F005, M001-M004 (8 tasks x ``per_seq`` frames; skin types chosen so that
lighter and darker pools hold 4 each); DISFA-like: SN001-SN004 (one video ``V1``, 5 AUs coded).
AU24 is never active, so every model meets an AU without positive training labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepfn.config.load import settings_from_dict
from deepfn.config.settings import Settings
from deepfn.data.corpus import (
    AUS,
    DISFA_AUS,
    SubjectData,
    write_manifest,
    write_subject,
    write_subjects,
)

SIZE = 32
# subject -> (dataset, gender, skin type)
ROSTER: dict[str, tuple[str, str, int]] = {
    "F001": ("bp4d", "F", 1), "F002": ("bp4d", "F", 2), "F003": ("bp4d", "F", 5),
    "F004": ("bp4d", "F", 6), "F005": ("bp4d", "F", 3),
    "M001": ("bp4d", "M", 1), "M002": ("bp4d", "M", 2), "M003": ("bp4d", "M", 5),
    "M004": ("bp4d", "M", 6),
    "SN001": ("disfa", "F", 3), "SN002": ("disfa", "M", 4), "SN003": ("disfa", "F", 2),
    "SN004": ("disfa", "M", 5),
}
TEMPLATE = "F005"


def make_subject(sid: str, dataset: str, seed: int, per_seq: int = 4,
                 size: int = SIZE) -> SubjectData:
    rng = np.random.default_rng(seed)
    n = 8 * per_seq
    occ = (rng.random((n, len(AUS))) < 0.4).astype(np.int8)
    occ[:, AUS.index(24)] = 0
    occ[rng.random((n, len(AUS))) < 0.05] = -1  # some frames not coded
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    if dataset == "disfa":
        occ[:, ~np.isin(AUS, DISFA_AUS)] = -1
        seq, frame = np.array(["V1"] * n), np.arange(n, dtype=np.int32)
    else:
        seq = np.repeat([f"T{i}" for i in range(1, 9)], per_seq)
        frame = np.tile(np.arange(per_seq, dtype=np.int32), 8)
    inten = np.where(occ > 0, 2, occ).astype(np.int8)
    return SubjectData(sid, images, occ, inten, seq, frame)


def write_corpus(root: Path, seed: int = 0, roster: dict = ROSTER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (sid, (dataset, gender, skin)) in enumerate(roster.items()):
        write_subject(root, make_subject(sid, dataset, seed * 1000 + i))
        rows.append({"subject": sid, "dataset": dataset, "gender": gender,
                     "skin_type": skin, "expressivity": 0.4})
    write_subjects(root / "subjects.csv", pd.DataFrame(rows))
    write_manifest(root, source="test", image_size=SIZE, subjects=list(roster))
    return root


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models gain nothing from a second thread, and lose a lot on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``original`` corpus dir, ``normalized`` root (one corpus per method, as the transfer
    stage writes it) and ``template`` json (shared, read-only)."""
    root = tmp_path_factory.mktemp("au_corpora")
    template = root / "template.json"
    template.write_text(json.dumps({"subject": TEMPLATE}))
    for seed, method in enumerate(("deepfn", "person_mean", "person_median"), start=1):
        write_corpus(root / "normalized" / method, seed)
    return {"original": write_corpus(root / "clf", 0), "normalized": root / "normalized",
            "template": template}


def smoke_settings(**experiments: object) -> Settings:
    """The smoke profile at the fixture's scale (2 train, 1 val, >= 1 test subject)."""
    base = {"repetitions": 1, "epochs": 1, "batch_size": 16, "n_train": 2, "n_val": 1,
            "strategy": "sequential", "normalizations": ("original", "deepfn")}
    return settings_from_dict({"profile": "smoke", "experiments": {**base, **experiments}})


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


class Interrupted(Exception):
    """Stands in for a kill inside the experiments stage."""


@contextmanager
def logging_killed_after(n_runs: int) -> Iterator[None]:
    """Within the block the experiments stage's ``log_evaluation`` logs ``n_runs`` runs, then
    raises :class:`Interrupted` (a process killed mid-stage); restored on leaving."""
    from deepfn.au import experiments

    real, calls = experiments.log_evaluation, []

    def flaky(*args: object, **kwargs: object) -> object:
        if len(calls) == n_runs:
            raise Interrupted("killed")
        calls.append(1)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiments, "log_evaluation", flaky)
        yield
