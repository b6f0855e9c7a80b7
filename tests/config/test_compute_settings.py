"""The compute: section (compute.device), validated like every other section."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deepfn.compute.device import DEVICE_PATTERN
from deepfn.config import load_settings
from deepfn.config.load import settings_from_dict
from deepfn.config.settings import ComputeSettings
from deepfn.errors import DeepFNError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_pick_the_device_automatically() -> None:
    assert load_settings(REPO / "params.yaml").compute.device == "auto"
    assert settings_from_dict({}).compute.device == "auto"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:7"])
def test_device_values(device: str) -> None:
    assert settings_from_dict({"compute": {"device": device}}).compute.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "CUDA", "cuda:one", "mps"])
def test_bad_device_is_one_line_naming_the_key(device: str) -> None:
    with pytest.raises(DeepFNError) as info:
        settings_from_dict({"compute": {"device": device}})
    msg = str(info.value)
    assert msg.startswith("params.yaml: compute.device: must be auto, cpu, cuda or cuda:N")
    assert "\n" not in msg


def test_unknown_compute_key_is_rejected() -> None:
    with pytest.raises(DeepFNError, match=r"compute\.engin: unknown key"):
        settings_from_dict({"compute": {"engin": "ray"}})


def test_settings_and_resolver_accept_the_same_names() -> None:
    for name in ["auto", "cpu", "cuda", "cuda:12", "gpu", "cuda:", "cpu:0", "auto ", "cpu\n"]:
        try:
            ComputeSettings(device=name)
            ok = True
        except ValueError:
            ok = False
        assert ok == bool(re.fullmatch(DEVICE_PATTERN, name)), name


def test_every_field_is_described() -> None:
    assert all(f.description for f in ComputeSettings.model_fields.values())
