"""The pretrain, normalize and transfer entrypoints on a tiny corpus with a real MLflow store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfn.data.corpus import read_manifest, read_subject, read_subjects, subject_ids
from deepfn.normalizer.methods import TRANSFERRED, person_shift
from deepfn.tracking import EXPERIMENT_NORMALIZER
from deepfn.tracking.provenance import code_fingerprint
from deepfn.utils.io import sha256_file
from pipelines import normalize as normalize_stage
from pipelines import pretrain as pretrain_stage
from pipelines import transfer as transfer_stage
from tests.conftest import make_corpus

SUBJECTS = ["F001", "F002", "M001", "SN001"]
PARAMS = """\
profile: smoke
pretrain: {iterations: 4}
normalize: {iterations: 6, batch_size: 4, checkpoint_every: 2, log_every: 2, min_frames: 8}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny corpus + template, pretrained once and normalized for every subject."""
    root = tmp_path_factory.mktemp("normalizer")
    make_corpus(root / "data" / "ae", SUBJECTS, size=32, per_seq=4)   # 32 frames each
    template = make_corpus(root / "data" / "template", ["F001"], size=32, per_seq=4)
    (template / "template.json").write_text(json.dumps({"subject": "F001"}))
    (root / "params.yaml").write_text(PARAMS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlruns/mlflow.db")
        assert pretrain_stage.main(["--template", "data/template",
                                    "--out", "models/pretrained.pt"]) == 0
        for sid in SUBJECTS:
            assert normalize_stage.main(_normalize_argv(sid)) == 0
        yield root
    torch.set_num_threads(threads)


def _normalize_argv(sid: str, *extra: str) -> list[str]:
    return ["--subject", sid, "--data", "data/ae", "--template", "data/template",
            "--pretrained", "models/pretrained.pt", "--out", f"models/normalizers/{sid}.pt",
            *extra]


def _runs(root: Path, stage: str):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name(EXPERIMENT_NORMALIZER)
    assert exp is not None
    return client, client.search_runs([exp.experiment_id], f"tags.stage = '{stage}'")


def test_normalize_logs_a_run_per_subject_with_tags_metrics_and_preview(workspace: Path):
    client, runs = _runs(workspace, "normalize")
    assert sorted(r.data.tags["subject"] for r in runs) == sorted(SUBJECTS)
    run = next(r for r in runs if r.data.tags["subject"] == "SN001")
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["dataset"] == "disfa" and tags["gender"] == "F"
    assert tags["template_subject"] == "F001" and tags["profile"] == "smoke"
    assert {"skin_type", "data_version", "git_commit", "run_key"} <= set(tags)
    assert tags["code_fingerprint"] == code_fingerprint("normalize")
    assert run.data.params["normalize.iterations"] == "6"
    assert run.data.params["preprocess.ae_size"] == "32"
    assert "pretrain.iterations" in run.data.params
    history = client.get_metric_history(run.info.run_id, "loss_subject")
    assert [m.step for m in history] == [2, 4, 6]
    assert {"loss_template", "iterations_per_s", "final_loss_subject"} <= set(run.data.metrics)
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"preview.png", "checkpoint.json"} <= files
    info = json.loads(Path(client.download_artifacts(run.info.run_id, "checkpoint.json"))
                      .read_text())
    assert info["path"] == "models/normalizers/SN001.pt"
    assert info["sha256"] == sha256_file(workspace / info["path"])
    png = Path(client.download_artifacts(run.info.run_id, "preview.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pretrain_run_and_model_meta(workspace: Path):
    _, runs = _runs(workspace, "pretrain")
    assert len(runs) == 1 and runs[0].data.tags["subject"] == "F001"
    obj = torch.load(workspace / "models" / "pretrained.pt", weights_only=True)
    assert obj["kind"] == "pretrained" and obj["meta"]["iterations"] == 4
    norm = torch.load(workspace / "models" / "normalizers" / "F002.pt", weights_only=True)
    assert norm["meta"]["subject"] == "F002" and norm["meta"]["template_subject"] == "F001"
    assert norm["arch"] == {"size": 32, "width": 4, "latent": 32, "mean_face": True,
                            "center_input": True}  # smoke
    assert set(norm) == {"format", "kind", "arch", "state_dict", "meta"}  # no optimizer state
    assert not list((workspace / ".deepfn" / "work" / "normalize").glob("*.pt"))  # cleaned up


def test_transfer_writes_a_valid_corpus_and_diagnostics(workspace: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace}/mlruns/mlflow.db")
    root = workspace / "data" / "normalized"
    make_corpus(root, ["F001"], size=32, per_seq=4)  # a corpus in the layout before methods
    rc = transfer_stage.main(["--data", "data/ae", "--models", "models/normalizers",
                              "--out", "data/normalized", "--reports", "reports/normalization"])
    assert rc == 0
    assert sorted(p.name for p in root.iterdir()) == sorted(TRANSFERRED)  # stale files gone
    original = read_subjects(workspace / "data" / "ae" / "subjects.csv")
    template = read_subject(workspace / "data" / "ae", "F001").images
    for method in TRANSFERRED:
        out = root / method
        manifest = read_manifest(out)
        assert manifest["source"] == method and manifest["image_size"] == 32
        assert manifest["template_subject"] == "F001"
        assert subject_ids(out) == SUBJECTS
        assert read_subjects(out / "subjects.csv").equals(original)
        for sid in SUBJECTS:
            before, after = read_subject(workspace / "data" / "ae", sid), read_subject(out, sid)
            assert after.images.shape == before.images.shape and after.images.dtype == np.uint8
            for k in ("occurrence", "intensity", "sequence", "frame"):
                assert np.array_equal(getattr(after, k), getattr(before, k)), k
            if method != "deepfn":  # the baselines: exactly the library's shift
                stat = method.removeprefix("person_")
                assert np.array_equal(after.images,
                                      person_shift(before.images, template, stat)), (method, sid)
    assert "normalizers" in read_manifest(root / "deepfn")
    reports = workspace / "reports" / "normalization"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["identity_accuracy"]["chance"] == pytest.approx(0.25)
    assert 0.0 <= metrics["identity_accuracy"]["after"] <= 1.0
    assert set(metrics["methods"]) == set(TRANSFERRED)
    assert metrics["methods"]["deepfn"]["identity_accuracy"] == metrics["identity_accuracy"]
    for m in TRANSFERRED:
        assert 0.0 <= metrics["methods"][m]["identity_accuracy"]["after"] <= 1.0
    assert (reports / "fig2_group_averages.png").stat().st_size > 1000
    assert (reports / "examples.png").stat().st_size > 100
    per_au = metrics["expression_per_au"]
    assert set(per_au) == set(metrics["expression_r"]["before"]) and per_au
    report = (reports / "report.md").read_text()
    assert all(f"| {au} |" in report for au in per_au)
    assert "## Every method" in report and all(f" {m} |" in report for m in TRANSFERRED)
    _, runs = _runs(workspace, "transfer")
    assert "identity_accuracy_after" in runs[0].data.metrics
    assert {f"{m}/identity_accuracy_after" for m in TRANSFERRED} <= set(runs[0].data.metrics)
    au = next(iter(per_au))
    assert runs[0].data.metrics[f"expression_r_{au}_before"] == pytest.approx(
        per_au[au]["before"])
    assert runs[0].data.tags["code_fingerprint"] == code_fingerprint("transfer")


def test_too_few_frames_is_one_error_line(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workspace}/mlruns/mlflow.db")
    (workspace / "few.yaml").write_text(PARAMS.replace("min_frames: 8", "min_frames: 100"))
    rc = normalize_stage.main(_normalize_argv("F002", "--params", "few.yaml"))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err
    assert "F002.npz: 32 frames, fewer than normalize.min_frames=100" in err


def test_missing_pretrained_and_unknown_subject(workspace: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]):
    monkeypatch.chdir(workspace)
    argv = _normalize_argv("F002")
    argv[argv.index("models/pretrained.pt")] = "models/nope.pt"
    assert normalize_stage.main(argv) == 2
    assert "models/nope.pt: file not found" in capsys.readouterr().err
    assert normalize_stage.main(_normalize_argv("M009")) == 2
    assert "no subject M009" in capsys.readouterr().err


def test_transfer_without_a_normalizer_fails_naming_it(workspace: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    rc = transfer_stage.main(["--data", str(workspace / "data/ae"), "--models", str(tmp_path),
                              "--out", str(tmp_path / "out"), "--reports", str(tmp_path / "r"),
                              "--params", str(workspace / "params.yaml")])
    assert rc == 2 and "no normalizer for subject F001" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
