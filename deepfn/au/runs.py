"""MLflow side of the experiments: parent (condition) runs, child (model) runs, resume helpers.

Only the main process calls these (the sqlite store must have one writer).  Every child run is
written with four calls -- ``create_run`` with all tags, ``log_table`` for ``participants.json``,
one ``log_batch`` for params and metrics, ``set_terminated`` -- about 0.1-0.2 s a run on sqlite.
Names of tags and metrics are what the stats stage reads (docs/protocol.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run

from deepfn.au.metrics import summarize_rows
from deepfn.au.protocol import Evaluation
from deepfn.au.trainer import JobResult
from deepfn.tracking import iter_runs

__all__ = ["TABLE_COLUMNS", "search_runs", "kill_stale_runs", "get_or_create_parents",
           "finish_parents", "log_evaluation", "condition_tags", "evaluation_tags"]

TABLE_COLUMNS = ("participant", "au", "f1", "accuracy", "score", "n_frames")
_BATCH = 900  # log_batch takes at most 1000 entities per call


def search_runs(c: MlflowClient, exp_id: str, filter_string: str) -> Iterator[Run]:
    """All (active) runs of an experiment matching a filter, page by page."""
    return iter_runs(c, [exp_id], filter_string)


def kill_stale_runs(c: MlflowClient, exp_id: str, keys: set[str]) -> int:
    """Mark RUNNING model runs whose ``run_key`` is planned as KILLED (left by a killed stage)."""
    n = 0
    for r in search_runs(c, exp_id, "attributes.status = 'RUNNING' and tags.kind = 'model'"):
        if r.data.tags.get("run_key") in keys:
            c.set_terminated(r.info.run_id, "KILLED")
            n += 1
    return n


def get_or_create_parents(c: MlflowClient, exp_id: str, conditions: Mapping[str, dict[str, str]],
                          common: Mapping[str, str], params: Mapping[str, str]
                          ) -> dict[str, str]:
    """``condition -> run_id`` of the parent runs (tag ``kind=condition``), reused by run_key.

    ``conditions`` maps a condition name to its tags (``run_key`` included).  An existing parent
    in any state is reused (so a resumed stage nests its new runs under the same parent).
    """
    by_key = {r.data.tags.get("run_key"): r.info.run_id
              for r in search_runs(c, exp_id, "tags.kind = 'condition'")}
    out = {}
    for name, tags in conditions.items():
        rid = by_key.get(tags["run_key"])
        if rid is None:
            run = c.create_run(exp_id, run_name=name,
                               tags={**common, **tags, "kind": "condition"})
            rid = run.info.run_id
            c.log_batch(rid, params=[Param(k, v) for k, v in params.items()])
        else:
            c.update_run(rid, status="RUNNING")
        out[name] = rid
    return out


def finish_parents(c: MlflowClient, parents: Mapping[str, str], status: str = "FINISHED") -> None:
    for rid in parents.values():
        c.set_terminated(rid, status)


def condition_tags(ev: Evaluation) -> dict[str, str]:
    """The tags naming a condition (parent and child runs)."""
    return {"group": ev.group, "evaluation": ev.evaluation, "train_group": ev.train_group,
            "test_group": ev.test_group, "normalization": ev.normalization}


def evaluation_tags(ev: Evaluation) -> dict[str, str]:
    """The child tags: condition, repetition and subjects."""
    return {**condition_tags(ev), "split_seed": str(ev.split_seed),
            "repetition": str(ev.repetition),
            "train_subjects": ",".join(ev.train_subjects),
            "val_subjects": ",".join(ev.val_subjects),
            "test_subjects": ",".join(ev.test_subjects)}


def _metrics(result: JobResult, rows: Sequence[dict]) -> list[Metric]:
    ts = int(time.time() * 1000)
    out = [Metric("train_loss", v, ts, e) for e, v in enumerate(result.train_loss, 1)]
    out += [Metric("val_f1", v, ts, e) for e, v in enumerate(result.val_f1, 1)]
    summary = {"best_epoch": float(result.best_epoch), "train_seconds": result.seconds,
               "n_aus_without_positives": float(len(result.aus_without_positives)),
               **summarize_rows(rows)}
    out += [Metric(k, v, ts, 0) for k, v in summary.items()]
    return out


def log_evaluation(c: MlflowClient, exp_id: str, *, parent_id: str, run_name: str, ev: Evaluation,
                   result: JobResult, test_group: str, tags: Mapping[str, str],
                   params: Mapping[str, str]) -> str:
    """Log one (model, test group) evaluation as a FINISHED child run; returns its run id.

    A failure half-way marks the run FAILED (KILLED on Ctrl-C) so a rerun redoes it.
    """
    rows = result.tests[test_group]
    all_tags = {**tags, **evaluation_tags(ev), "kind": "model", "mlflow.parentRunId": parent_id}
    if result.aus_without_positives:
        all_tags["aus_without_positives"] = ",".join(result.aus_without_positives)
    run = c.create_run(exp_id, run_name=run_name, tags=all_tags)
    rid = run.info.run_id
    try:
        # the table first: log_table reads the run back, cheaper before the metrics are in
        c.log_table(rid, pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), "participants.json")
        metrics = _metrics(result, rows)
        plist = [Param(k, v) for k, v in params.items()]  # <= 100: one experiments section
        c.log_batch(rid, params=plist, metrics=metrics[:_BATCH])
        for i in range(_BATCH, len(metrics), _BATCH):
            c.log_batch(rid, metrics=metrics[i:i + _BATCH])
    except KeyboardInterrupt:
        c.set_terminated(rid, "KILLED")
        raise
    except BaseException:
        c.set_terminated(rid, "FAILED")
        raise
    c.set_terminated(rid, "FINISHED")
    return rid
