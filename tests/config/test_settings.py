"""params.yaml validation: profiles, overrides, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from deepfn.config import PROFILES, load_settings
from deepfn.config.load import settings_from_dict
from deepfn.errors import DeepFNError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_validate_and_use_default_profile() -> None:
    s = load_settings(REPO / "params.yaml")
    assert s.profile == "default"
    assert s.normalize.iterations == PROFILES["default"]["normalize"]["iterations"]
    assert s.preprocess.ae_size == 64


def test_profile_switch_changes_scale() -> None:
    smoke = settings_from_dict({"profile": "smoke"})
    paper = settings_from_dict({"profile": "paper"})
    assert smoke.preprocess.ae_size == 32
    assert (paper.preprocess.ae_size, paper.normalize.width, paper.normalize.latent) == (
        128, 128, 1024)
    assert (paper.normalize.iterations, paper.experiments.epochs,
            paper.experiments.repetitions) == (50_000, 50, 20)
    assert paper.experiments.lr == pytest.approx(5e-5)


def test_explicit_value_overrides_profile_and_null_does_not() -> None:
    s = settings_from_dict({"profile": "smoke", "normalize": {"iterations": 77, "width": None}})
    assert s.normalize.iterations == 77
    assert s.normalize.width == PROFILES["smoke"]["normalize"]["width"]


def test_settings_are_frozen() -> None:
    s = settings_from_dict({})
    with pytest.raises(ValidationError):
        s.normalize.lr = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"normalize": {"iterations": -5}}, "normalize.iterations: Input should be greater"),
        ({"normalize": {"iters": 3}}, "normalize.iters: unknown key"),
        ({"nonsense": {"a": 1}}, "nonsense: unknown key"),
        ({"profile": "fast"}, "profile: 'fast' is not a profile; allowed: smoke, default, paper"),
        ({"experiments": {"groups": ["age"]}}, "experiments.groups: Input should be 'person'"),
        ({"synthesize": {"subjects": ["F001", "X9"]}}, "synthesize.subjects: subject id 'X9'"),
        ({"synthesize": {"source": "licensed"}}, "needs bp4d_root"),
        ({"preprocess": {"ae_size": 100}}, "preprocess.ae_size: Input should be a multiple of 32"),
        ({"experiments": {"lr": "fast"}}, "experiments.lr: Input should be a valid number"),
        ({"template": {"subject": "F999"}}, "template.subject 'F999' is not in"),
        ({"profile": "paper", "normalize": {"finetune": "decoder_subject"}},
         "normalize.finetune: decoder_subject keeps E and D^y from the warm start"),
        ({"experiments": {"match_frames": True, "subject_frames": "whole"}},
         "experiments: match_frames: true gives every model one subject's train part; set "
         "subject_frames: parts"),
    ],
)
def test_bad_params_fail_with_one_line_naming_the_key(raw: dict, needle: str) -> None:
    with pytest.raises(DeepFNError) as err:
        settings_from_dict(raw)
    msg = str(err.value)
    assert "\n" not in msg
    assert needle in msg


def test_bad_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("profile: [smoke\n")
    with pytest.raises(DeepFNError, match="not valid YAML"):
        load_settings(p)
    with pytest.raises(DeepFNError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


def test_every_params_key_is_a_settings_field() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    s = settings_from_dict(raw)
    for section, values in raw.items():
        if isinstance(values, dict):
            fields = type(getattr(s, section)).model_fields
            assert set(values) <= set(fields), section
            assert set(fields) == set(values), f"params.yaml misses keys of {section}"


def test_smoke_roster_fills_every_split_whichever_subject_is_the_template() -> None:
    """For the shipped synthesize.seed (skin types depend on it)."""
    from deepfn.au.protocol import check_pools, group_pools
    from deepfn.config.profiles import SMOKE_ROSTER
    from deepfn.data.synth.roster import roster_metadata

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "smoke"
    raw["synthesize"]["subjects"] = list(SMOKE_ROSTER)
    exp = settings_from_dict(raw).experiments
    table = roster_metadata(SMOKE_ROSTER, seed=raw["synthesize"]["seed"])
    for template in table.index[table["dataset"] == "bp4d"]:
        for group in exp.groups:
            check_pools(group_pools(table, group, template), group, exp)  # raises if short
