from __future__ import annotations

import pytest

from deepfn.tracking import EXPERIMENT_NORMALIZER, RunWriter, Store


@pytest.fixture
def store(new_uri, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Store(new_uri("s"))


def _open(store: Store, flush_every: int) -> RunWriter:
    return store.create_run(EXPERIMENT_NORMALIZER, run_name="w", tags={},
                            flush_every=flush_every)


def test_writes_wait_for_flush_every_entities(store: Store) -> None:
    run = _open(store, flush_every=5)
    for step in range(4):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    assert store.client.get_metric_history(run.run_id, "loss") == []
    assert run.pending == 4
    run.log_metrics({"loss": 0.1}, step=4)  # the fifth: one log_batch with all five
    assert run.pending == 0
    steps = [m.step for m in store.client.get_metric_history(run.run_id, "loss")]
    assert sorted(steps) == [0, 1, 2, 3, 4]


def test_batches_beyond_mlflow_limits_arrive_whole(store: Store) -> None:
    """log_batch takes at most 100 params and 1000 metrics a call; the writer splits."""
    run = _open(store, flush_every=1_000_000)
    run.log_params({f"p{i:03d}": i for i in range(250)})
    run.set_tags({f"t{i:03d}": str(i) for i in range(150)})
    for step in range(1200):
        run.log_metrics({"a": step, "b": -step}, step=step)
    run.terminate()
    got = store.client.get_run(run.run_id)
    assert len(got.data.params) == 250 and got.data.params["p249"] == "249"
    assert sum(k.startswith("t") for k in got.data.tags) == 150
    assert len(store.client.get_metric_history(run.run_id, "b")) == 1200
    assert got.info.status == "FINISHED" and run.pending == 0


def test_a_refused_param_can_be_dropped_and_the_rest_sent(store: Store) -> None:
    from mlflow.exceptions import MlflowException

    run = _open(store, flush_every=1_000_000)
    run.log_params({"lr": "0.001"})
    run.flush()
    run.log_params({"lr": "1e-3"})  # another value for a logged param: MLflow refuses
    run.log_metric("value", 0.7)
    with pytest.raises(MlflowException):
        run.flush()
    assert run.pending == 2  # nothing was lost
    run.drop_params()
    run.flush()
    got = store.client.get_run(run.run_id).data
    assert got.params == {"lr": "0.001"} and got.metrics == {"value": 0.7}


def test_flush_every_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="flush_every"):
        RunWriter(store.client, "x", flush_every=0)
