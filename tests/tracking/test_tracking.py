from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import deepfn
from deepfn import tracking
from deepfn.tracking import EXPERIMENT_AU, Store, names, resolve_tracking_uri


@pytest.fixture(autouse=True)
def _no_env_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _names(store: Store, experiment: str = EXPERIMENT_AU) -> list[str]:
    return sorted(r.info.run_name for r in store.search([store.experiment_id(experiment)]))


def test_two_stores_in_one_process_never_see_each_others_runs(new_uri) -> None:
    import mlflow

    before = mlflow.get_tracking_uri()
    a, b = Store(new_uri("a")), Store(new_uri("b"))
    for store, name in ((a, "first"), (b, "second"), (a, "third")):
        with store.start_run(EXPERIMENT_AU, run_name=name, tags={"stage": "test"}) as run:
            run.log_metrics({"m": 1.0})
    assert _names(a) == ["first", "third"] and _names(b) == ["second"]
    # a third store opened afterwards (fresh objects) reads the same files
    assert _names(Store(a.uri)) == ["first", "third"]
    # ... and nothing global changed on the way
    assert "MLFLOW_TRACKING_URI" not in os.environ and mlflow.get_tracking_uri() == before


def test_uri_precedence_explicit_then_env_then_params(new_uri, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env = new_uri("explicit"), new_uri("env")
    conf = f"sqlite:///{tmp_path}/params/mlflow.db"
    assert resolve_tracking_uri() == tracking.DEFAULT_TRACKING_URI == "sqlite:///mlruns/mlflow.db"
    assert resolve_tracking_uri(None, conf) == conf
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env)
    assert resolve_tracking_uri(None, conf) == env
    assert resolve_tracking_uri(explicit, conf) == explicit
    # the store really writes where the rule says
    with Store(explicit, configured=conf).start_run(EXPERIMENT_AU, run_name="x", tags={}):
        pass
    with Store(configured=conf).start_run(EXPERIMENT_AU, run_name="y", tags={}):
        pass
    assert _names(Store(explicit)) == ["x"] and _names(Store(env)) == ["y"]
    assert not (tmp_path / "params").exists()
    assert os.environ["MLFLOW_TRACKING_URI"] == env


def test_experiments_keep_artifacts_next_to_the_sqlite_file_and_say_model_development(
        new_uri, tmp_path: Path) -> None:
    store = Store(new_uri("mlruns"))
    exp = store.client.get_experiment(store.experiment_id(EXPERIMENT_AU))
    assert exp.artifact_location == (tmp_path / "mlruns" / "artifacts" / EXPERIMENT_AU).as_uri()
    assert exp.tags[names.TAG_EXPERIMENT_KIND] == "custom_model_development"
    with store.start_run(EXPERIMENT_AU, run_name="r", tags={}) as run:
        (tmp_path / "note.txt").write_text("hi")
        run.log_artifact(tmp_path / "note.txt")
    assert (tmp_path / "mlruns" / "artifacts" / EXPERIMENT_AU / run.run_id / "artifacts"
            / "note.txt").read_text() == "hi"
    # an experiment made before deepfn tagged its own gets the tag the next time it is used
    legacy = store.client.create_experiment("deepfn-tuning")
    assert names.TAG_EXPERIMENT_KIND not in store.client.get_experiment(legacy).tags
    assert Store(store.uri).experiment_id("deepfn-tuning") == legacy
    assert store.client.get_experiment(legacy).tags[names.TAG_EXPERIMENT_KIND] == (
        "custom_model_development")


def test_a_run_that_raises_is_failed_and_keeps_what_it_logged(new_uri) -> None:
    store = Store(new_uri("s"))
    with pytest.raises(ValueError), store.start_run(EXPERIMENT_AU, run_name="bad", tags={},
                                                    params={"p": 1}) as run:
        run.log_metrics({"loss": 0.5}, step=3)
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), store.start_run(EXPERIMENT_AU, run_name="ctrl-c",
                                                           tags={}) as killed:
        raise KeyboardInterrupt
    got = store.client.get_run(run.run_id)
    assert got.info.status == "FAILED" and got.data.params == {"p": "1"}
    assert [(m.step, m.value) for m in store.client.get_metric_history(run.run_id, "loss")] == [
        (3, 0.5)]
    assert store.client.get_run(killed.run_id).info.status == "KILLED"


def test_finished_by_key_and_nested_runs(new_uri) -> None:
    store = Store(new_uri("s"))
    assert store.finished_by_key(EXPERIMENT_AU) == {}  # no experiment yet: none made
    assert store.find_experiment_id(EXPERIMENT_AU) is None
    with store.start_run(EXPERIMENT_AU, run_name="parent", tags={"run_key": "p"}) as parent:
        with store.start_run(EXPERIMENT_AU, run_name="child", tags={"run_key": "c"},
                             parent_run_id=parent.run_id) as child:
            pass
    with pytest.raises(RuntimeError), store.start_run(EXPERIMENT_AU, run_name="x",
                                                      tags={"run_key": "f"}):
        raise RuntimeError
    assert store.finished_by_key(EXPERIMENT_AU) == {"p": parent.run_id, "c": child.run_id}
    assert store.client.get_run(child.run_id).data.tags[names.TAG_PARENT_RUN] == parent.run_id


@pytest.mark.parametrize("kind", ["sqlite", "server"])
def test_sqlite_and_server_uris_both_round_trip(kind: str, new_uri, tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
    uri = new_uri("s") if kind == "sqlite" else request.getfixturevalue("mlflow_server")
    experiment = f"roundtrip-{kind}-{tmp_path.name}"
    store = Store(uri)
    (tmp_path / "preview.txt").write_text("artifact")
    with store.start_run(experiment, run_name="r", tags={"group": "person"},
                         params={"lr": 0.001}) as run:
        run.log_metrics({"val_f1": 0.25}, step=1)
        run.log_metrics({"val_f1": 0.5}, step=2)
        run.log_artifact(tmp_path / "preview.txt")
    reader = Store(uri)  # another client of the same store
    (got,) = reader.search([reader.experiment_id(experiment)], "tags.group = 'person'")
    assert got.info.run_id == run.run_id and got.info.status == "FINISHED"
    assert got.data.params == {"lr": "0.001"} and got.data.metrics == {"val_f1": 0.5}
    history = reader.client.get_metric_history(run.run_id, "val_f1")
    assert [(m.step, m.value) for m in history] == [(1, 0.25), (2, 0.5)]
    local = reader.client.download_artifacts(run.run_id, "preview.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "artifact"
    if kind == "server":
        assert got.info.artifact_uri.startswith("mlflow-artifacts:")


_FLUENT = re.compile(r"mlflow\.(start_run|end_run|active_run|log_\w+|set_tags?|set_experiment"
                     r"|set_tracking_uri|autolog)\(|MlflowClient\(\s*\)")


def test_no_fluent_api_or_global_uri_in_the_package() -> None:
    """Every MLflow call goes through a Store's explicit client (the fluent API shares one
    process-wide run and URI)."""
    root = Path(deepfn.__file__).parent
    offenders = [f"{p.relative_to(root.parent)}:{i}: {line.strip()}"
                 for p in sorted(root.rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if _FLUENT.search(line) or "os.environ[\"MLFLOW_TRACKING_URI\"]" in line]
    assert offenders == []
