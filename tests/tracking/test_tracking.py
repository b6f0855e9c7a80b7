from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepfn import tracking


def test_two_stores_in_one_process_stay_apart(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; the first store must not capture
    every later resolve (it did: the negative-control script's second store got no runs)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
    for uri, name in ((a, "first"), (b, "second")):
        exp = tracking.experiment_id(tracking.EXPERIMENT_AU, uri)
        tracking.client(uri).create_run(exp, run_name=name)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert tracking.resolve_tracking_uri(b) == b
    for uri, name in ((a, "first"), (b, "second")):
        c = tracking.client(uri)
        runs = c.search_runs([tracking.experiment_id(tracking.EXPERIMENT_AU, uri)])
        assert [r.info.run_name for r in runs] == [name]


def test_the_users_environment_still_wins(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    env = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    tracking.client(f"sqlite:///{tmp_path}/other.db")
    assert os.environ["MLFLOW_TRACKING_URI"] == env
    assert tracking.resolve_tracking_uri(f"sqlite:///{tmp_path}/other.db") == env
