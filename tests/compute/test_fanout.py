"""The normalizer fan-out on the session's local Ray cluster: a task whose worker is killed
mid-run is retried, resumes from its checkpoint and writes the same bytes and run key as the
local engine; the driver logs each run once, however often it records it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import mlflow
import psutil
import pytest

from deepfn.compute.engine import RayCluster
from deepfn.compute.fanout import (
    DATA,
    PRETRAINED,
    TEMPLATE,
    WORK,
    RunRecorder,
    SubjectResult,
    record_result,
    run_normalize_tasks,
)
from deepfn.config import load_settings
from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError
from deepfn.normalizer.jobs import run_normalize, run_pretrain
from deepfn.tracking import EXPERIMENT_NORMALIZER, Store
from deepfn.tracking.provenance import code_fingerprint
from tests.conftest import make_corpus

pytestmark = pytest.mark.slow

# long enough (seconds) to be killed after its first checkpoint and before the end
PARAMS = """\
profile: smoke
pretrain: {iterations: 4}
normalize: {iterations: 120, batch_size: 4, checkpoint_every: 10, log_every: 10, min_frames: 8}
compute: {engine: ray, device: cpu}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The normalize stage's inputs laid out as dvc.yaml declares them."""
    root = tmp_path_factory.mktemp("fanout")
    make_corpus(root / DATA, ["F001", "F002", "F003"], size=32, per_seq=4)
    template = make_corpus(root / TEMPLATE, ["F001"], size=32, per_seq=4)
    (template / "template.json").write_text(json.dumps({"subject": "F001"}))
    (root / "params.yaml").write_text(PARAMS)
    run_pretrain(_settings(root), template_dir=root / TEMPLATE, out=root / PRETRAINED,
                 work_dir=root / "work-pretrain", progress=False)
    return root


def _settings(root: Path) -> Settings:
    s = load_settings(root / "params.yaml")
    return s.model_copy(update={"tracking": s.tracking.model_copy(
        update={"uri": f"sqlite:///{root}/mlruns/mlflow.db"})})


def _local(root: Path, subject: str, out: Path) -> tuple[bytes, str]:
    """The local engine's model bytes and run key for ``subject``."""
    recorder = RunRecorder()
    run_normalize(_settings(root), subject=subject, data_dir=root / DATA,
                  template_dir=root / TEMPLATE, pretrained=root / PRETRAINED,
                  out=out / f"{subject}.pt", work_dir=out / "work", progress=False,
                  tracker=recorder)
    return (out / f"{subject}.pt").read_bytes(), recorder.runs[0].run_key


def _kill_worker_after_checkpoint(root: Path, subject: str, killed: list[int]) -> None:
    """Kill the worker running ``subject``'s task once its first work checkpoint exists."""
    me = psutil.Process()
    deadline = time.time() + 240
    while time.time() < deadline and not killed:
        if list((root / WORK).glob(f"{subject}-*.pt")):
            for p in me.children(recursive=True):
                try:
                    if p.cmdline() and p.cmdline()[0].startswith("ray::normalize"):
                        os.kill(p.pid, signal.SIGKILL)
                        killed.append(p.pid)
                except psutil.Error:
                    continue
        time.sleep(0.02)


def test_killed_worker_retries_resumes_and_matches_local(
        project: Path, ray_cluster: RayCluster, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = _settings(project)
    killed: list[int] = []
    killer = threading.Thread(target=_kill_worker_after_checkpoint,
                              args=(project, "F002", killed), daemon=True)
    killer.start()
    (result,) = list(run_normalize_tasks(settings, ["F002"], project, ray_cluster))
    killer.join(timeout=5)
    assert killed, "the worker was never seen running"
    assert isinstance(result, SubjectResult), result
    assert result.shared_work_dir  # same machine: the retry saw the driver's work dir ...
    assert result.info["resumed_from"] > 0  # ... and continued from its checkpoint

    store = Store(settings.tracking.uri)
    fingerprint = code_fingerprint("normalize")
    assert record_result(result, store, project, fingerprint=fingerprint)
    assert not record_result(result, store, project, fingerprint=fingerprint)  # driver rerun

    model, key = _local(project, "F002", tmp_path / "local")
    assert (project / "models/normalizers/F002.pt").read_bytes() == model
    assert result.run.run_key == key
    runs = mlflow.MlflowClient(settings.tracking.uri).search_runs(
        [store.find_experiment_id(EXPERIMENT_NORMALIZER)], "tags.stage = 'normalize'")
    assert [r.data.tags["run_key"] for r in runs] == [key]
    assert runs[0].info.status == "FINISHED"
    assert {"checkpoint.json", "preview.png"} <= {
        a.path for a in store.client.list_artifacts(runs[0].info.run_id)}
    assert runs[0].data.metrics["loss_subject"] > 0


def test_a_failing_task_is_one_line_and_the_others_finish(
        project: Path, ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = _settings(project)
    s = s.model_copy(update={"normalize": s.normalize.model_copy(update={"iterations": 20})})
    bad = project / DATA / "F003.npz"
    saved = bad.read_bytes()
    try:
        bad.write_bytes(b"not an npz")
        out = {type(r).__name__: r for r in run_normalize_tasks(s, ["F001", "F003"], project,
                                                                 ray_cluster)}
    finally:
        bad.write_bytes(saved)
    assert isinstance(out["SubjectResult"], SubjectResult)
    err = out["DeepFNError"]
    assert isinstance(err, DeepFNError)
    assert str(err).startswith("normalize@F003: data/preprocessed/ae/F003.npz")
    assert "\n" not in str(err)
