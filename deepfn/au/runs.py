"""MLflow side of the experiments: parent (condition) runs, child (model) runs, resume helpers.

Only the main process calls these (the sqlite store must have one writer).  Every child run is
written with four calls -- ``create_run`` with all tags, ``log_table`` for ``participants.json``,
one ``log_batch`` for params and metrics (:class:`~deepfn.tracking.RunWriter`),
``set_terminated`` -- about 0.1-0.2 s a run on sqlite.  Tag and metric names are those of
:mod:`deepfn.tracking.names`, which the stats stage reads (docs/protocol.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from deepfn.au.metrics import summarize_rows
from deepfn.au.protocol import Evaluation
from deepfn.au.trainer import JobResult
from deepfn.tracking import RunWriter, Store
from deepfn.tracking import names as n

if TYPE_CHECKING:
    from mlflow.entities import Run

__all__ = ["TABLE_COLUMNS", "search_runs", "kill_stale_runs", "get_or_create_parents",
           "finish_parents", "log_evaluation", "condition_tags", "evaluation_tags"]

TABLE_COLUMNS = ("participant", "au", "f1", "accuracy", "score", "n_frames")
_MODEL = f"tags.{n.TAG_KIND} = '{n.KIND_MODEL}'"
_CONDITION = f"tags.{n.TAG_KIND} = '{n.KIND_CONDITION}'"


def search_runs(store: Store, experiment: str, filter_string: str) -> Iterator[Run]:
    """All (active) runs of an experiment matching a filter, page by page."""
    return store.search([store.experiment_id(experiment)], filter_string)


def kill_stale_runs(store: Store, experiment: str, keys: set[str]) -> int:
    """Mark RUNNING model runs whose ``run_key`` is planned as KILLED (left by a killed stage)."""
    k = 0
    for r in search_runs(store, experiment, f"attributes.status = 'RUNNING' and {_MODEL}"):
        if r.data.tags.get(n.TAG_RUN_KEY) in keys:
            store.client.set_terminated(r.info.run_id, "KILLED")
            k += 1
    return k


def get_or_create_parents(store: Store, experiment: str,
                          conditions: Mapping[str, dict[str, str]], common: Mapping[str, str],
                          params: Mapping[str, str]) -> dict[str, str]:
    """``condition -> run_id`` of the parent runs (tag ``kind=condition``), reused by run_key.

    ``conditions`` maps a condition name to its tags (``run_key`` included).  An existing parent
    in any state is reused (so a resumed stage nests its new runs under the same parent).
    """
    by_key = {r.data.tags.get(n.TAG_RUN_KEY): r.info.run_id
              for r in search_runs(store, experiment, _CONDITION)}
    out = {}
    for name, tags in conditions.items():
        rid = by_key.get(tags[n.TAG_RUN_KEY])
        if rid is None:
            run = store.create_run(experiment, run_name=name, params=params,
                                   tags={**common, **tags, n.TAG_KIND: n.KIND_CONDITION})
            run.flush()
            rid = run.run_id
        else:
            store.client.update_run(rid, status="RUNNING")
        out[name] = rid
    return out


def finish_parents(store: Store, parents: Mapping[str, str], status: str = "FINISHED") -> None:
    for rid in parents.values():
        store.client.set_terminated(rid, status)


def condition_tags(ev: Evaluation) -> dict[str, str]:
    """The tags naming a condition (parent and child runs)."""
    return {n.TAG_GROUP: ev.group, n.TAG_EVALUATION: ev.evaluation,
            n.TAG_TRAIN_GROUP: ev.train_group, n.TAG_TEST_GROUP: ev.test_group,
            n.TAG_NORMALIZATION: ev.normalization}


def evaluation_tags(ev: Evaluation) -> dict[str, str]:
    """The child tags: condition, repetition and subjects."""
    return {**condition_tags(ev), n.TAG_SPLIT_SEED: str(ev.split_seed),
            n.TAG_REPETITION: str(ev.repetition),
            n.TAG_TRAIN_SUBJECTS: ",".join(ev.train_subjects),
            n.TAG_VAL_SUBJECTS: ",".join(ev.val_subjects),
            n.TAG_TEST_SUBJECTS: ",".join(ev.test_subjects)}


def _log_metrics(run: RunWriter, result: JobResult, rows: Sequence[dict[str, Any]]) -> None:
    """Per-epoch curves (steps from 1) and the summary (step 0), all at one timestamp."""
    ts = int(time.time() * 1000)
    for name, values in ((n.METRIC_TRAIN_LOSS, result.train_loss),
                         (n.METRIC_VAL_F1, result.val_f1)):
        for epoch, value in enumerate(values, 1):
            run.log_metric(name, value, step=epoch, timestamp=ts)
    run.log_metrics({n.METRIC_BEST_EPOCH: float(result.best_epoch),
                     n.METRIC_TRAIN_SECONDS: result.seconds,
                     n.METRIC_N_AUS_WITHOUT_POSITIVES: float(len(result.aus_without_positives)),
                     **summarize_rows(rows)}, step=0, timestamp=ts)


def log_evaluation(store: Store, experiment: str, *, parent_id: str, run_name: str,
                   ev: Evaluation, result: JobResult, test_group: str, tags: Mapping[str, str],
                   params: Mapping[str, str]) -> str:
    """Log one (model, test group) evaluation as a FINISHED child run; returns its run id.

    A failure half-way marks the run FAILED (KILLED on Ctrl-C) so a rerun redoes it.
    """
    rows = result.tests[test_group]
    all_tags = {**tags, **evaluation_tags(ev), n.TAG_KIND: n.KIND_MODEL}
    if result.aus_without_positives:
        all_tags[n.TAG_AUS_WITHOUT_POSITIVES] = ",".join(result.aus_without_positives)
    # one log_batch for params and metrics: a writer that never flushes on its own
    run = store.create_run(experiment, run_name=run_name, tags=all_tags, parent_run_id=parent_id,
                           flush_every=1_000_000)
    try:
        # the table first: log_table reads the run back, cheaper before the metrics are in
        run.log_table(pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), "participants.json")
        run.log_params(params)  # <= 100: one experiments section
        _log_metrics(run, result, rows)
        run.flush()
    except KeyboardInterrupt:
        store.client.set_terminated(run.run_id, "KILLED")
        raise
    except BaseException:
        store.client.set_terminated(run.run_id, "FAILED")
        raise
    store.client.set_terminated(run.run_id, "FINISHED")
    return run.run_id
