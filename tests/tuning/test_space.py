"""Search space -> params.yaml keys, exported YAML and the dvc command (no training)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from deepfn.config.load import settings_from_dict
from deepfn.tuning.report import dvc_command, export_best, write_plots
from deepfn.tuning.space import PARAM_KEYS, suggest, to_overrides
from deepfn.tuning.study import make_pruner, storage_label
from tests.tuning.overrides import apply_overrides

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("target", ["classifier", "normalizer"])
def test_suggestions_stay_in_the_params_ranges(target: str) -> None:
    s = settings_from_dict({"profile": "default"})
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        p = suggest(target, study.ask(), s)
        assert set(p) == set(PARAM_KEYS[target])
        t = s.tune
        assert t.lr[0] <= p["lr"] <= t.lr[1]
        if target == "classifier":
            assert p["batch_size"] in t.batch_size and t.epochs[0] <= p["epochs"] <= t.epochs[1]
            assert t.weight_decay[0] <= p["weight_decay"] <= t.weight_decay[1]
        else:
            assert p["width"] in t.width and t.iterations[0] <= p["iterations"] <= t.iterations[1]
            assert p["pretrain_iterations"] in (0, s.pretrain.iterations)


def _study_with(target: str, values: list[float]) -> optuna.Study:
    s = settings_from_dict({"profile": "default"})
    study = optuna.create_study(study_name=f"unit-{target}", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    for v in values:
        t = study.ask()
        suggest(target, t, s)
        study.tell(t, v)
    return study


@pytest.mark.parametrize("target", ["classifier", "normalizer"])
def test_best_yaml_loads_and_validates_when_applied(target: str, tmp_path: Path) -> None:
    study = _study_with(target, [0.4, 0.7, 0.5])
    best = export_best(study, target, tmp_path)
    assert best is not None and best["trial"] == 1
    overrides = yaml.safe_load(Path(best["yaml"]).read_text())
    assert overrides == best["overrides"]
    assert all("." in k for k in overrides)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    settings = settings_from_dict(apply_overrides(raw, overrides))
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        assert getattr(getattr(settings, section), key) == value
    cmd = (tmp_path / f"{study.study_name}_best_command.txt").read_text().strip()
    assert cmd == best["command"] == dvc_command(overrides)
    assert cmd.startswith("dvc exp run -S ") and cmd.count("-S ") == len(overrides)
    # the same values come back from a -S key=value parse (YAML scalars)
    parsed = dict(a.split("=", 1) for a in cmd.split(" -S ")[1:])
    assert {k: yaml.safe_load(v) for k, v in parsed.items()} == overrides


def test_no_completed_trial_exports_nothing_and_plots_are_skipped(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    assert export_best(study, "classifier", tmp_path) is None
    assert write_plots(study, tmp_path) == []


def test_one_completed_trial_draws_history_but_no_importances(tmp_path: Path) -> None:
    study = _study_with("classifier", [0.5])
    names = sorted(p.name for p in write_plots(study, tmp_path))
    assert names == ["unit-classifier_history.png", "unit-classifier_parallel.png"]


def test_overrides_reject_foreign_params_and_warm_start_follows_pretrain() -> None:
    with pytest.raises(ValueError, match="map to no params.yaml key"):
        to_overrides("classifier", {"width": 8})
    o = to_overrides("normalizer", {"lr": 1e-3, "warp_strength": 0.01, "iterations": 60,
                                    "width": 8, "pretrain_iterations": 0})
    assert o["pretrain.iterations"] == 0 and o["normalize.warm_start"] is False
    assert o["normalize.finetune"] == "all"  # the CPU recipe's decoder_subject needs a warm start
    warm = to_overrides("normalizer", {"lr": 1e-3, "warp_strength": 0.01, "iterations": 60,
                                       "width": 8, "pretrain_iterations": 100})
    assert warm["normalize.warm_start"] is True and "normalize.finetune" not in warm


def test_storage_label_hides_passwords_and_pruners_exist() -> None:
    label = storage_label("postgresql://bob:s3cret@db.lan:5432/optuna")
    assert "s3cret" not in label and "db.lan" in label
    assert storage_label(None).startswith("journal:") and storage_label(None).endswith(
        ".optuna/journal.log")
    for kind in ("median", "successive_halving", "none"):
        assert make_pruner(kind) is not None
