"""The experiments stage end to end on a real MLflow sqlite store: runs, manifest, resume."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from deepfn import tracking
from deepfn.au import experiments
from deepfn.au.experiments import run_experiments, train_budget
from deepfn.au.runs import search_runs
from deepfn.tracking.provenance import TAG_CODE_FINGERPRINT, code_fingerprint
from pipelines.experiments import main

from .conftest import TEMPLATE, Interrupted, logging_killed_after, smoke_settings

GROUPS = ["person", "gender"]
# person: 1 independent + 5 dependent models, gender: 2 models (x2 evaluations); x2 normalizations
N_MODELS, N_RUNS = 16, 20


def _settings():
    return smoke_settings(groups=GROUPS)


def _model_runs(uri: str) -> list:
    return list(search_runs(tracking.Store(uri), tracking.EXPERIMENT_AU, "tags.kind = 'model'"))


@pytest.fixture(scope="module")
def stage(corpora, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One uninterrupted run of the stage entrypoint (the reference for the other tests)."""
    tmp = tmp_path_factory.mktemp("stage")
    uri = f"sqlite:///{tmp}/mlflow.db"
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "smoke", "experiments": {
        "groups": GROUPS, "repetitions": 1, "epochs": 1, "batch_size": 16, "n_train": 2,
        "n_val": 1, "strategy": "sequential", "normalizations": ["original", "deepfn"]}}))
    out = tmp / "results" / "experiments.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        rc = main(["--original", str(corpora["original"]), "--normalized",
                   str(corpora["normalized"]), "--template", str(corpora["template"]),
                   "--out", str(out), "--params", str(params)])
    assert rc == 0
    return {"uri": uri, "manifest": json.loads(out.read_text()), "runs": _model_runs(uri)}


def test_manifest_lists_every_run(stage) -> None:
    m = stage["manifest"]
    assert m["experiment"] == "deepfn-au" and m["tracking_uri"] == stage["uri"]
    assert "+" in m["data_version"] and m["template"] == TEMPLATE
    assert m["counts"]["models"] == N_MODELS and m["counts"]["runs"] == N_RUNS
    assert "runs_logged" not in m["counts"]  # the file depends on the plan and its runs only
    assert m["counts"]["conditions"]["person/dependent/self->self/deepfn"] == 5
    keys = {"run_id", "run_key", "group", "evaluation", "train_group", "test_group",
            "normalization", "repetition", "split_seed"}
    assert all(set(r) == keys for r in m["runs"])
    assert len({r["run_key"] for r in m["runs"]}) == N_RUNS
    assert {r.info.run_id for r in stage["runs"]} == {r["run_id"] for r in m["runs"]}


def test_runs_carry_the_tags_metrics_and_table_the_stats_stage_reads(stage) -> None:
    c = tracking.Store(stage["uri"]).client
    runs = stage["runs"]
    assert all(r.info.status == "FINISHED" for r in runs)
    run = next(r for r in runs if r.data.tags["group"] == "gender"
               and r.data.tags["evaluation"] == "independent")
    tags = run.data.tags
    for k in ("group", "evaluation", "train_group", "test_group", "normalization", "split_seed",
              "repetition", "train_subjects", "val_subjects", "test_subjects", "model_key",
              "run_key", "stage", "profile", "data_version", "git_commit"):
        assert tags.get(k), k
    assert tags["kind"] == "model" and tags["stage"] == "experiments"
    assert tags["train_group"] != tags["test_group"]
    parent = c.get_run(tags["mlflow.parentRunId"])
    assert parent.data.tags["kind"] == "condition" and parent.info.status == "FINISHED"
    fingerprint = code_fingerprint("experiments")
    assert tags[TAG_CODE_FINGERPRINT] == parent.data.tags[TAG_CODE_FINGERPRINT] == fingerprint
    assert parent.info.run_name == (f"gender/independent/{tags['train_group']}->"
                                    f"{tags['test_group']}/{tags['normalization']}")
    # the dependent evaluation of the same model shares its model_key
    twins = [r for r in runs if r.data.tags["model_key"] == tags["model_key"]]
    assert sorted(r.data.tags["evaluation"] for r in twins) == ["dependent", "independent"]
    metrics = run.data.metrics
    for k in ("test/score", "test/f1", "test/accuracy", "test/AU01/f1", "test/AU01/accuracy",
              "test/AU01/score", "best_epoch", "train_loss", "val_f1"):
        assert k in metrics, k
    assert metrics["n_aus_without_positives"] == 1.0  # AU24 in the fixture
    assert run.data.params["experiments.epochs"] == "1"
    test_subjects = tags["test_subjects"].split(",")
    assert all(f"participant/{s}/score" in metrics for s in test_subjects)
    table = json.loads(Path(c.download_artifacts(run.info.run_id, "participants.json"))
                       .read_text())
    assert table["columns"] == ["participant", "au", "f1", "accuracy", "score", "n_frames"]
    assert {row[0] for row in table["data"]} == set(test_subjects)
    assert len(c.get_metric_history(run.info.run_id, "train_loss")) == 1


def test_person_dependent_and_independent_share_test_frames(stage) -> None:
    c = tracking.Store(stage["uri"]).client
    person = [r for r in stage["runs"] if r.data.tags["group"] == "person"
              and r.data.tags["normalization"] == "original"]
    frames: dict[str, Counter] = {}
    for r in person:
        table = json.loads(Path(c.download_artifacts(r.info.run_id, "participants.json"))
                           .read_text())
        frames[r.data.tags["evaluation"] + r.info.run_id] = Counter(
            {(row[0], row[1]): row[5] for row in table["data"]})
    indep = next(v for k, v in frames.items() if k.startswith("independent"))
    dep = sum((v for k, v in frames.items() if k.startswith("dependent")), Counter())
    assert dep == indep
    tags = {r.data.tags["evaluation"]: r.data.tags for r in person}
    assert tags["independent"]["train_group"] == tags["independent"]["test_group"] == "others"
    assert tags["dependent"]["train_group"] == tags["dependent"]["test_group"] == "self"


def test_dependent_models_get_as_many_steps_as_independent_ones(stage) -> None:
    """equal_steps: a person-dependent model (1 subject's train part: 16 of its 32 frames) runs
    n_train (2) x 32 / 16 x the epochs of a cross-person model (subject_frames: whole)."""
    c = tracking.Store(stage["uri"]).client
    epochs = {r.data.tags["evaluation"]: len(c.get_metric_history(r.info.run_id, "train_loss"))
              for r in stage["runs"] if r.data.tags["group"] == "person"}
    assert epochs == {"independent": 1, "dependent": 4}


def test_run_keys_follow_result_settings_only(corpora) -> None:
    def keys(**changes) -> list[str]:
        p = experiments.plan(smoke_settings(groups=GROUPS, **changes), corpora["original"],
                             corpora["normalized"], corpora["template"], "cpu")
        return [k for m in p.models for k in m.run_keys]

    base = keys()
    assert keys(workers=3, strategy="process", min_test=1) == base
    assert set(keys(repetitions=2)) > set(base)  # adds runs, keeps the others
    assert not set(keys(lr=2.5e-3)) & set(base)
    assert not set(keys(epochs=3)) & set(base)


def test_train_budget() -> None:
    exp = smoke_settings(epochs=3).experiments  # n_train 2
    assert [train_budget(exp, n)[0] for n in (1, 2, 3)] == [6, 3, 3]
    off = smoke_settings(epochs=3, equal_steps=False).experiments
    matched = smoke_settings(epochs=3, match_frames=True, subject_frames="parts").experiments
    assert train_budget(off, 1)[0] == train_budget(matched, 1)[0] == 3
    # strides: all frames unless match_frames, then one subject's worth
    assert [train_budget(exp, n)[1] for n in (1, 2)] == [1, 1]
    assert [train_budget(matched, n) for n in (1, 2)] == [(3, 1), (3, 2)]
    # subject_frames whole: a dependent model reads 5/8 of what a cross-person model reads of
    # a subject, so it runs 8/5 x more again: 3 x 2 x 1.6 = 9.6 -> 10 epochs
    assert train_budget(exp, 1, 1.6)[0] == 10
    assert train_budget(exp, 2, 1.0)[0] == train_budget(off, 1, 1.6)[0] == 3


def test_whole_subjects_feed_cross_person_models_every_frame(corpora, mlflow_store) -> None:
    """subject_frames: whole -- the independent and gender models read all parts of their train
    and validation subjects; a person-dependent model keeps to its own train/val parts and runs
    the epochs that give it the Adam steps of a cross-person model."""
    from deepfn.au.protocol import ALL_PARTS, TRAIN, VAL
    from deepfn.au.trainer import count_train_frames

    settings = smoke_settings(groups=GROUPS, epochs=2, subject_frames="whole")
    p = experiments.plan(settings, corpora["original"], corpora["normalized"],
                         corpora["template"], "cpu")
    work = experiments.build_jobs(p, experiments.resume(p, settings, mlflow_store),
                                  settings.experiments, "cpu")
    by_name = {m.model_key: m.plan for m in work.todo}
    cross = [j for j in work.jobs if len(by_name[j.key].train) == 2]
    dependent = [j for j in work.jobs if len(by_name[j.key].train) == 1]
    assert len(cross) == 6 and len(dependent) == 10  # person others + gender F, M; x2 methods
    assert all(j.train_parts == j.val_parts == ALL_PARTS and j.config.epochs == 2
               for j in cross)
    for j in dependent:
        (s,) = j.train
        assert (j.train_parts, j.val_parts) == ((TRAIN,), (VAL,)) and j.val == j.train
        ratio = count_train_frames(j.corpus_dir, s, ALL_PARTS) / count_train_frames(
            j.corpus_dir, s)
        assert j.config.epochs == round(2 * 2 * ratio) > 2 * 2
    parts = smoke_settings(groups=GROUPS, subject_frames="parts")
    p = experiments.plan(parts, corpora["original"], corpora["normalized"],
                         corpora["template"], "cpu")
    jobs = experiments.build_jobs(p, experiments.resume(p, parts, mlflow_store),
                                  parts.experiments, "cpu").jobs
    assert {(j.train_parts, j.val_parts) for j in jobs} == {((TRAIN,), (VAL,))}


def test_whole_subjects_change_the_run_keys(corpora) -> None:
    def keys(**changes: object) -> set[str]:
        p = experiments.plan(smoke_settings(groups=GROUPS, **changes), corpora["original"],
                             corpora["normalized"], corpora["template"], "cpu")
        return {k for m in p.models for k in m.run_keys}

    assert not keys(subject_frames="whole") & keys(subject_frames="parts")


def test_interrupted_run_resumes_to_the_same_runs(corpora, stage, mlflow_store,
                                                  tmp_path) -> None:
    out = tmp_path / "experiments.json"
    with logging_killed_after(7), pytest.raises(Interrupted):
        run_experiments(_settings(), corpora["original"], corpora["normalized"],
                        corpora["template"], out, progress=False)
    assert not out.exists()
    done = {r.data.tags["run_key"] for r in _model_runs(mlflow_store)}
    assert len(done) == 7
    # a hard kill can leave a RUNNING run behind: it must be marked KILLED and redone
    pending = next(r["run_key"] for r in stage["manifest"]["runs"] if r["run_key"] not in done)
    store = tracking.Store(mlflow_store)
    c, exp_id = store.client, store.experiment_id(tracking.EXPERIMENT_AU)
    stale = c.create_run(exp_id, tags={"kind": "model", "run_key": pending}).info.run_id

    m = run_experiments(_settings(), corpora["original"], corpora["normalized"],
                        corpora["template"], out, progress=False)
    assert m["counts"]["runs_logged"] == N_RUNS - 7 and m["counts"]["runs_skipped"] == 7
    assert c.get_run(stale).info.status == "KILLED"
    runs = [r for r in _model_runs(mlflow_store) if r.info.status == "FINISHED"]
    assert len(runs) == N_RUNS
    keys = [r.data.tags["run_key"] for r in runs]
    assert len(set(keys)) == N_RUNS
    assert set(keys) == {r["run_key"] for r in stage["manifest"]["runs"]}
    parents = list(search_runs(store, tracking.EXPERIMENT_AU, "tags.kind = 'condition'"))
    assert len(parents) == len(stage["manifest"]["counts"]["conditions"])
    assert all(p.info.status == "FINISHED" for p in parents)

    again = run_experiments(_settings(), corpora["original"], corpora["normalized"],
                            corpora["template"], out, progress=False)
    assert again["counts"]["runs_logged"] == 0 and again["runs"] == m["runs"]


def test_missing_normalized_subject_is_one_line(corpora, tmp_path, capsys) -> None:
    norm = tmp_path / "normalized"
    shutil.copytree(corpora["normalized"], norm)
    (norm / "person_median" / "M002.npz").unlink()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "smoke", "experiments": {
        "groups": GROUPS, "n_train": 2, "n_val": 1}}))
    out = tmp_path / "experiments.json"
    rc = main(["--original", str(corpora["original"]), "--normalized", str(norm), "--template",
               str(corpora["template"]), "--out", str(out), "--params", str(params)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 0 and "person_median/M002.npz" in err
    assert "dvc repro transfer" in err


def test_every_method_is_planned_and_keyed_apart(corpora) -> None:
    """Each listed method plans the same models on its own corpus; the method is in every run
    key, and adding baselines never rekeys the original or DeepFN runs."""
    def plan(*methods: str) -> experiments.Plan:
        return experiments.plan(smoke_settings(groups=GROUPS, normalizations=methods),
                                corpora["original"], corpora["normalized"], corpora["template"],
                                "cpu")

    two, four = plan("original", "deepfn"), plan("original", "deepfn", "person_mean",
                                                 "person_median")
    assert four.corpus == {"original": str(corpora["original"]),
                           **{m: str(corpora["normalized"] / m)
                              for m in ("deepfn", "person_mean", "person_median")}}
    by_method: dict[str, set[str]] = {}
    for m in four.models:
        by_method.setdefault(m.plan.normalization, set()).update(m.run_keys)
    assert len(by_method) == 4 and len({len(k) for k in by_method.values()}) == 1
    assert len(set().union(*by_method.values())) == 4 * len(by_method["original"])  # disjoint
    assert two.run_keys == by_method["original"] | by_method["deepfn"]
    assert plan("person_median").run_keys == by_method["person_median"]


def test_unknown_normalization_is_one_line_naming_the_key(corpora, tmp_path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"profile": "smoke", "experiments": {
        "normalizations": ["original", "person_zscore"]}}))
    out = tmp_path / "experiments.json"
    rc = main(["--original", str(corpora["original"]), "--normalized",
               str(corpora["normalized"]), "--template", str(corpora["template"]),
               "--out", str(out), "--params", str(params)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not out.exists() and err.count("\n") == 0
    assert "experiments.normalizations" in err and "person_zscore" in err
    assert "person_median" in err  # the fix: the allowed names
