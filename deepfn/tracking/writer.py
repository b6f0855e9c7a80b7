"""The one batched writer: params, tags and metrics of a run queue up and go out in ``log_batch``.

Every sqlite commit costs ~10 ms, so writers never log value by value: the experiments stage
sends a model run's params and metrics in one call, the normalizer stages flush their loss
curves every ``flush_every`` values, the tuning study run gets one call per trial.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # mlflow is slow to import; it is imported where a writer is built
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Metric

__all__ = ["RunWriter", "MAX_PARAMS", "MAX_TAGS", "MAX_ENTITIES"]

# log_batch limits (mlflow.utils.validation): per call at most 100 params, 100 tags, 1000 metrics
# and 1000 entities in all.
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000
PARAM_VALUE_LIMIT = 6000


class RunWriter:
    """Buffered writes to one run through an explicit client.

    Writes are queued and sent with :meth:`flush` (also when ``flush_every`` entities are
    pending); artifacts go out at once.  Params keep the last value given per key (MLflow
    refuses two values for one key).
    """

    def __init__(self, client: MlflowClient, run_id: str, *, flush_every: int = MAX_ENTITIES
                 ) -> None:
        if flush_every < 1:
            raise ValueError("flush_every must be >= 1")
        self.client, self.run_id, self.flush_every = client, run_id, flush_every
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._metrics: list[Metric] = []

    def __repr__(self) -> str:
        return f"RunWriter(run_id={self.run_id!r}, pending={self.pending})"

    @property
    def pending(self) -> int:
        """Entities queued and not yet sent."""
        return len(self._params) + len(self._tags) + len(self._metrics)

    # -- queued ---------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self._params.update({k: str(v)[:PARAM_VALUE_LIMIT] for k, v in params.items()})
        self._maybe_flush()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})
        self._maybe_flush()

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0,
                    timestamp: int | None = None) -> None:
        """Metrics at one step; ``timestamp`` (ms since the epoch) defaults to now."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000) if timestamp is None else timestamp
        self._metrics += [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        self._maybe_flush()

    def log_metric(self, key: str, value: float, *, step: int = 0,
                   timestamp: int | None = None) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def drop_params(self) -> None:
        """Forget the queued params (e.g. after MLflow refused one logged earlier with another
        value); the metrics and tags stay queued."""
        self._params.clear()

    def flush(self) -> None:
        """Send everything queued, in as few ``log_batch`` calls as MLflow's limits allow.

        What a failed call carried stays queued (see :meth:`drop_params`).
        """
        from mlflow.entities import Param, RunTag

        while self.pending:
            params = list(self._params.items())[:MAX_PARAMS]
            tags = list(self._tags.items())[:MAX_TAGS]
            n = MAX_ENTITIES - len(params) - len(tags)
            metrics = self._metrics[:n]
            self.client.log_batch(self.run_id, metrics=metrics,
                                  params=[Param(k, v) for k, v in params],
                                  tags=[RunTag(k, v) for k, v in tags])
            for k, _ in params:
                del self._params[k]
            for k, _ in tags:
                del self._tags[k]
            del self._metrics[:len(metrics)]

    def _maybe_flush(self) -> None:
        if self.pending >= self.flush_every:
            self.flush()

    # -- immediate ------------------------------------------------------------------------------
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def log_table(self, data: pd.DataFrame, artifact_file: str) -> None:
        """A table artifact (MLflow's ``log_table``: the UI shows it under "Evaluation")."""
        self.client.log_table(self.run_id, data, artifact_file)

    def terminate(self, status: str = "FINISHED") -> None:
        """Flush, then end the run with ``status`` (FINISHED, FAILED, KILLED)."""
        self.flush()
        self.client.set_terminated(self.run_id, status)
