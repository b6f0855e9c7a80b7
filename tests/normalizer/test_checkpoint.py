"""Model files and work checkpoints: round trip, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepfn.errors import DeepFNError
from deepfn.normalizer.checkpoint import (
    load_model,
    load_work_checkpoint,
    save_model,
    save_work_checkpoint,
)
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.train import Adam, TrainState

ARCH = ArchConfig(32, 4, 16)


def _one_line(err: pytest.ExceptionInfo[DeepFNError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_model_round_trip_is_exact_and_weights_only(tmp_path: Path):
    model = DeepFNAutoencoder(ARCH)
    path = tmp_path / "models" / "F001.pt"
    save_model(path, model, kind="normalizer", meta={"subject": "F001", "iterations": 3})
    torch.load(path, weights_only=True)  # no pickled classes
    loaded, meta = load_model(path, arch=ARCH)
    assert meta == {"subject": "F001", "iterations": 3}
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left no temp file


def test_missing_file(tmp_path: Path):
    with pytest.raises(DeepFNError) as err:
        load_model(tmp_path / "F009.pt")
    assert "F009.pt: file not found" in _one_line(err)


def test_corrupt_bytes(tmp_path: Path):
    path = tmp_path / "F001.pt"
    save_model(path, DeepFNAutoencoder(ARCH), kind="normalizer", meta={})
    path.write_bytes(path.read_bytes()[: 300])  # truncated, as by a full disk
    with pytest.raises(DeepFNError) as err:
        load_model(path)
    assert "corrupt" in _one_line(err) and str(path) in str(err.value)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DeepFNError, match="corrupt"):
        load_model(path)


def test_wrong_architecture_names_both(tmp_path: Path):
    path = tmp_path / "F001.pt"
    save_model(path, DeepFNAutoencoder(ARCH), kind="normalizer", meta={})
    with pytest.raises(DeepFNError) as err:
        load_model(path, arch=ArchConfig(32, 8, 16))
    msg = _one_line(err)
    assert "width=4" in msg and "width=8" in msg


def test_wrong_kind(tmp_path: Path):
    path = tmp_path / "pretrained.pt"
    save_model(path, DeepFNAutoencoder(ARCH), kind="pretrained", meta={})
    with pytest.raises(DeepFNError, match="'pretrained' model, expected 'normalizer'"):
        load_model(path, kind="normalizer")


def test_work_checkpoint_of_other_settings_or_architecture_is_refused(tmp_path: Path):
    model = DeepFNAutoencoder(ARCH)
    path = tmp_path / "F001-abc.pt"
    save_work_checkpoint(path, model=model, optimizer=Adam(model.parameters(), 1e-3, (0.5, 0.9)),
                         generator=torch.Generator(), state=TrainState(iteration=2), key="abc")
    assert load_work_checkpoint(path, ARCH, "abc")["iteration"] == 2
    with pytest.raises(DeepFNError, match="settings hash"):
        load_work_checkpoint(path, ARCH, "other")
    with pytest.raises(DeepFNError, match="built for"):
        load_work_checkpoint(path, ArchConfig(64, 4, 16), "abc")
    save_model(tmp_path / "m.pt", model, kind="normalizer", meta={})
    with pytest.raises(DeepFNError, match="not a work checkpoint"):
        load_work_checkpoint(tmp_path / "m.pt", ARCH, "abc")
