"""The real objectives on tiny corpora: LeNet-5 validation scores, never a test frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from typer.testing import CliRunner

from deepfn.au.protocol import TEST, frame_parts
from deepfn.cli import app
from deepfn.config.load import load_settings, settings_from_dict
from deepfn.data.corpus import read_subject, subject_ids
from deepfn.tuning import objectives
from deepfn.tuning.objectives import ClassifierObjective, TuneData, tuning_plans
from pipelines import tune as tune_stage

from .conftest import TEMPLATE
from .overrides import apply_overrides


def _enable(params: Path, **tune: object) -> None:
    raw = yaml.safe_load(params.read_text())
    raw["tune"].update({"enabled": True, **tune})
    params.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_stage_is_a_quick_noop_when_disabled(tmp_path, tiny):
    out = tmp_path / "reports" / "tuning"
    assert tune_stage.main(["--original", "missing", "--normalized", "missing", "--template",
                            "missing.json", "--out", str(out), "--params",
                            str(tiny["params"])]) == 0
    status = json.loads((out / "status.json").read_text())
    assert status["enabled"] is False and "tune.enabled" in status["reason"]
    assert list(out.iterdir()) == [out / "status.json"]


def test_stage_runs_the_real_classifier_objective(tmp_path, tiny, tuning_mlflow, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default storage .optuna/journal.log lands here
    _enable(tiny["params"], study="clf-real", n_trials=2)
    read: list[tuple[str, str]] = []

    def spy(corpus, subject):
        read.append((Path(corpus).name, subject))
        return read_subject(corpus, subject)

    monkeypatch.setattr(objectives, "read_subject", spy)
    out = tmp_path / "reports" / "tuning"
    assert tune_stage.main(["--original", str(tiny["clf"]), "--normalized",
                            str(tiny["normalized"]), "--template", str(tiny["template"]),
                            "--out", str(out), "--params", str(tiny["params"])]) == 0
    status = json.loads((out / "status.json").read_text())
    assert status["enabled"] and status["trials"]["complete"] + status["trials"]["pruned"] == 2
    assert (tmp_path / ".optuna" / "journal.log").is_file()
    study = optuna.load_study(study_name="clf-real",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(
                                      str(tmp_path / ".optuna" / "journal.log"))))
    best = study.best_trial
    assert 0.0 <= best.value <= 1.0 and len(best.intermediate_values) == 4  # 2 splits x 2 norms
    # only train/validation subjects of the tuning splits were read, from both corpora
    settings = load_settings(tiny["params"])
    plans = tuning_plans(tiny["clf"], TEMPLATE, settings, 2, ["original", "deepfn"])
    allowed = {s for p in plans for s in (*p.train, *p.val)}
    assert {s for _, s in read} == allowed and {c for c, _ in read} == {"clf", "deepfn"}
    # ... and the study's MLflow run records which subjects played which role
    from deepfn.tracking import EXPERIMENT_TUNING, Store

    c = Store(tuning_mlflow).client
    (run,) = c.search_runs([c.get_experiment_by_name(EXPERIMENT_TUNING).experiment_id],
                           "tags.deepfn_role = 'study'")
    assert set(run.data.params["subjects.val"].split()) == {s for p in plans for s in p.val}
    # the exported parameters validate as params.yaml
    overrides = yaml.safe_load((out / "clf-real_best.yaml").read_text())
    assert set(overrides) == {f"experiments.{k}" for k in
                              ("lr", "beta1", "batch_size", "epochs", "weight_decay")}
    raw = yaml.safe_load(tiny["params"].read_text())
    assert settings_from_dict(apply_overrides(raw, overrides)).experiments.lr == overrides[
        "experiments.lr"]
    assert (out / "clf-real_best_command.txt").read_text().startswith("dvc exp run -S ")


def test_validation_view_holds_no_test_frame_and_no_test_only_subject(tmp_path, tiny):
    settings = load_settings(tiny["params"])
    obj = ClassifierObjective(settings, TuneData(original=tiny["clf"], template=tiny["template"]),
                              splits=1)
    try:
        (plan,) = obj.plans
        view = obj.views["original"]
        assert set(subject_ids(view)) == {*plan.train, *plan.val}
        assert not set(plan.evaluations[0].test_subjects) & set(subject_ids(view))
        for s in subject_ids(view):
            src, got = read_subject(tiny["clf"], s), read_subject(view, s)
            keep = frame_parts(src.sequence, src.frame) != TEST
            tr_va = src.images[keep]
            # every view frame is one of the subject's train/validation frames
            assert all((tr_va == img).all(axis=(1, 2)).any() for img in got.images)
            assert set(got.sequence) <= {"train", "val", "test"}
            assert not any((src.images[~keep] == img).all(axis=(1, 2)).any()
                           for img in got.images)
    finally:
        obj.close()
    assert not obj.root.exists()


def test_normalizer_objective_one_real_trial(tmp_path, tiny, tuning_mlflow):
    raw = yaml.safe_load(tiny["params"].read_text())
    raw["pretrain"]["iterations"] = 2
    raw["normalize"].update({"width": 4, "latent": 16, "batch_size": 4, "precision": "fp32",
                             "log_every": 1, "checkpoint_every": 100})
    raw["tune"].update({"iterations": [2, 3], "width": [4]})
    settings = settings_from_dict(raw)
    from deepfn.tuning import tune

    data = TuneData(original=tiny["clf"], template=tiny["template"], ae=tiny["ae"])
    summary = tune(settings, target="normalizer", data=data, study_name="norm-real",
                   n_trials=1, storage=str(tmp_path / "j.log"), out_dir=tmp_path / "r",
                   echo=lambda s: None)
    assert summary["trials"]["complete"] == 1
    assert 0.0 <= summary["best"]["value"] <= 1.0
    overrides = summary["best_export"]["overrides"]
    cold = overrides["pretrain.iterations"] == 0
    assert {"normalize.lr", "normalize.width", "normalize.iterations",
            "normalize.warp_strength", "pretrain.iterations", "normalize.warm_start"} | (
        {"normalize.finetune"} if cold else set()) == set(overrides)
    settings_from_dict(apply_overrides(raw, overrides))  # valid on the smoke profile's recipe
    assert np.isfinite(summary["best"]["value"])


def test_cli_refuses_a_study_of_the_other_target(tmp_path, tiny, tuning_mlflow):
    journal = tmp_path / "j.log"
    from deepfn.tuning.study import make_storage

    study = optuna.create_study(study_name="s", storage=make_storage(str(journal)),
                                direction="maximize")
    study.set_user_attr("target", "classifier")
    res = CliRunner().invoke(app, ["tune", "normalizer", "--study", "s", "--storage",
                                   str(journal), "--params", str(tiny["params"]),
                                   "--original", str(tiny["clf"]), "--template",
                                   str(tiny["template"])])
    assert res.exit_code == 2
    assert "tunes the classifier" in res.output


@pytest.mark.parametrize("bad", ["postgresql://nobody@127.0.0.1:1/none"])
def test_unreachable_database_is_one_line_error(bad):
    from deepfn.errors import DeepFNError
    from deepfn.tuning.study import make_storage

    with pytest.raises(DeepFNError, match="cannot open the study database"):
        make_storage(bad)
