"""Model files are pure functions of their inputs: same inputs, same bytes; keys on content."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from deepfn.config import load_settings
from deepfn.errors import DeepFNError
from deepfn.normalizer import checkpoint as ckpt
from deepfn.normalizer.jobs import run_normalize, run_pretrain
from deepfn.tracking import EXPERIMENT_NORMALIZER
from deepfn.tracking.provenance import TAG_CODE_FINGERPRINT, code_fingerprint
from tests.conftest import make_corpus

PARAMS = """\
profile: smoke
pretrain: {iterations: 4}
normalize: {iterations: 6, batch_size: 4, checkpoint_every: 2, log_every: 2, min_frames: 8}
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    make_corpus(root / "ae", ["F001", "F002"], size=32, per_seq=4)
    template = make_corpus(root / "template", ["F001"], size=32, per_seq=4)
    (template / "template.json").write_text(json.dumps({"subject": "F001"}))
    (root / "params.yaml").write_text(PARAMS)
    return root


def _run(inputs: Path, out: Path, pretrained: Path | None = None) -> dict[str, Path]:
    """pretrain + normalize F002 into ``out`` with a work dir and MLflow store of its own."""
    settings = load_settings(inputs / "params.yaml")
    settings = settings.model_copy(update={"tracking": settings.tracking.model_copy(
        update={"uri": f"sqlite:///{out}/mlruns/mlflow.db"})})
    if pretrained is None:
        pretrained = out / "pretrained.pt"
        run_pretrain(settings, template_dir=inputs / "template", out=pretrained,
                     work_dir=out / "work" / "pretrain", progress=False)
    run_normalize(settings, subject="F002", data_dir=inputs / "ae",
                  template_dir=inputs / "template", pretrained=pretrained,
                  out=out / "F002.pt", work_dir=out / "work" / "normalize", progress=False)
    return {"pretrained": pretrained, "normalizer": out / "F002.pt",
            "uri": f"sqlite:///{out}/mlruns/mlflow.db"}


@pytest.fixture(scope="module")
def first(inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return _run(inputs, tmp_path_factory.mktemp("first"))


def _runs(uri: str) -> dict[str, dict[str, str]]:
    c = mlflow.MlflowClient(tracking_uri=uri)
    exp = c.get_experiment_by_name(EXPERIMENT_NORMALIZER)
    return {r.data.tags["stage"]: r.data.tags for r in c.search_runs([exp.experiment_id])}


def test_same_inputs_write_byte_identical_models(inputs: Path, first: dict[str, Path],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a, b = first, _run(inputs, tmp_path / "b")
    for kind in ("pretrained", "normalizer"):
        assert a[kind].read_bytes() == b[kind].read_bytes(), kind
    meta = torch.load(a["normalizer"], weights_only=True)["meta"]
    assert not {"train_seconds", "settings_key", "resumed_from"} & set(meta)
    # the timings and keys live in MLflow, with the code fingerprint of each stage
    tags_a, tags_b = _runs(a["uri"]), _runs(b["uri"])
    for stage in ("pretrain", "normalize"):
        assert tags_a[stage]["run_key"] == tags_b[stage]["run_key"]
        assert tags_a[stage][TAG_CODE_FINGERPRINT] == code_fingerprint(stage)


def test_normalize_keys_on_the_pretrained_weights_not_the_file(
        inputs: Path, first: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a = first
    # the same weights in a file with other bytes (extra metadata)
    model, meta = ckpt.load_model(a["pretrained"], kind="pretrained")
    other = tmp_path / "other.pt"
    ckpt.save_model(other, model, kind="pretrained", meta={**meta, "note": "copied"})
    assert other.read_bytes() != a["pretrained"].read_bytes()
    b = _run(inputs, tmp_path / "b", pretrained=other)
    assert _runs(a["uri"])["normalize"]["run_key"] == _runs(b["uri"])["normalize"]["run_key"]
    assert a["normalizer"].read_bytes() == b["normalizer"].read_bytes()
    # other weights: another key
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    ckpt.save_model(other, model, kind="pretrained", meta=meta)
    c = _run(inputs, tmp_path / "c", pretrained=other)
    assert _runs(c["uri"])["normalize"]["run_key"] != _runs(a["uri"])["normalize"]["run_key"]


def test_an_older_format_is_one_line_naming_the_stage_to_rerun(first: dict[str, Path],
                                                               tmp_path: Path) -> None:
    obj = torch.load(first["normalizer"], weights_only=True)
    old = tmp_path / "old.pt"
    torch.save({**obj, "format": 1}, old)
    with pytest.raises(DeepFNError) as err:
        ckpt.load_model(old, fix="rerun dvc repro normalize")
    assert str(err.value) == (f"{old}: checkpoint format 1, this deepfn reads {ckpt.FORMAT}; "
                              "rerun dvc repro normalize")
