"""The tracking store: one explicit ``MlflowClient`` per :class:`Store`, no MLflow global state.

Which store a stage writes to (:func:`resolve_tracking_uri`), first match wins:

1. an explicit URI argument (``deepfn stats --tracking-uri``, ``Store(uri)``);
2. the ``MLFLOW_TRACKING_URI`` environment variable (e.g. a shared tracking server);
3. ``tracking.uri`` of ``params.yaml`` (``Store(configured=settings.tracking.uri)``);
4. :data:`DEFAULT_TRACKING_URI`, ``sqlite:///mlruns/mlflow.db``.

The fluent API (``mlflow.start_run``, ``mlflow.log_*``) and ``mlflow.set_tracking_uri`` are never
used: they share one process-wide run and URI, so two stores in one process would mix.  A
sqlite store keeps its artifacts next to the database (``mlruns/artifacts/<experiment>``); a
server chooses its own (``mlflow server --artifacts-destination``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from deepfn.tracking.names import (
    EXPERIMENT_KIND,
    TAG_EXPERIMENT_KIND,
    TAG_PARENT_RUN,
    TAG_RUN_KEY,
)
from deepfn.tracking.writer import MAX_ENTITIES, RunWriter

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = ["DEFAULT_TRACKING_URI", "ENV_TRACKING_URI", "resolve_tracking_uri", "display_uri",
           "Store"]

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
PAGE_SIZE = 1000  # runs per search page (MLflow servers accept up to 50,000)


def resolve_tracking_uri(uri: str | None = None, configured: str | None = None) -> str:
    """Explicit ``uri`` > ``MLFLOW_TRACKING_URI`` > ``configured`` (``tracking.uri``) > default."""
    return uri or os.environ.get(ENV_TRACKING_URI) or configured or DEFAULT_TRACKING_URI


def display_uri(uri: str) -> str:
    """The URI with any password masked (it goes into messages and reports)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


class Store:
    """One MLflow store and its client (``store.client``, an ``MlflowClient`` bound to
    ``store.uri``).

    ``uri`` is the explicit choice, ``configured`` the ``tracking.uri`` setting; see
    :func:`resolve_tracking_uri`.  A new sqlite store (its directory and database) is created
    on construction.
    """

    def __init__(self, uri: str | None = None, *, configured: str | None = None) -> None:
        from mlflow import MlflowClient

        self.uri = resolve_tracking_uri(uri, configured)
        db = _sqlite_path(self.uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.client: MlflowClient = MlflowClient(tracking_uri=self.uri)
        self._experiment_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Store({display_uri(self.uri)!r})"

    # -- experiments ----------------------------------------------------------------------------
    def artifact_location(self, experiment: str) -> str | None:
        """``<dir of the sqlite file>/artifacts/<experiment>`` as a file URI; None for a server."""
        db = _sqlite_path(self.uri)
        return None if db is None else (db.resolve().parent / "artifacts" / experiment).as_uri()

    def find_experiment_id(self, name: str) -> str | None:
        """The id of experiment ``name``, or None if the store has none of that name."""
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            return None
        self._experiment_ids[name] = exp.experiment_id
        return exp.experiment_id

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created if missing (tagged as model development, with
        its artifacts next to a sqlite store)."""
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.tags.get(TAG_EXPERIMENT_KIND) is None:  # made before deepfn tagged its own
                self.client.set_experiment_tag(exp.experiment_id, TAG_EXPERIMENT_KIND,
                                               EXPERIMENT_KIND)
            self._experiment_ids[name] = exp.experiment_id
            return exp.experiment_id
        try:
            exp_id = self.client.create_experiment(
                name, artifact_location=self.artifact_location(name),
                tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND})
        except Exception:  # created concurrently by another process
            found = self.find_experiment_id(name)
            if found is None:
                raise
            return found
        self._experiment_ids[name] = exp_id
        return exp_id

    # -- reading --------------------------------------------------------------------------------
    def search(self, experiment_ids: Sequence[str], filter_string: str = "", *,
               max_results: int = PAGE_SIZE, all_views: bool = False) -> Iterator[Run]:
        """Every run matching ``filter_string``, page by page (MLflow's ``page_token``)."""
        from mlflow.entities import ViewType

        view = ViewType.ALL if all_views else ViewType.ACTIVE_ONLY
        token = None
        while True:
            page = self.client.search_runs(list(experiment_ids), filter_string=filter_string,
                                           run_view_type=view, max_results=max_results,
                                           page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def finished_by_key(self, experiment: str, filter_string: str = "") -> dict[str, str]:
        """``run_key -> run_id`` of the FINISHED runs of ``experiment`` matching the filter."""
        exp_id = self.find_experiment_id(experiment)
        if exp_id is None:
            return {}
        flt = "attributes.status = 'FINISHED'" + (f" and {filter_string}" if filter_string else "")
        out: dict[str, str] = {}
        for r in self.search([exp_id], flt):
            key = r.data.tags.get(TAG_RUN_KEY)
            if key:
                out.setdefault(key, r.info.run_id)
        return out

    # -- writing --------------------------------------------------------------------------------
    def writer(self, run_id: str, *, flush_every: int = MAX_ENTITIES) -> RunWriter:
        """A batched writer for an existing run."""
        return RunWriter(self.client, run_id, flush_every=flush_every)

    def create_run(self, experiment: str, *, run_name: str, tags: Mapping[str, str],
                   params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                   flush_every: int = MAX_ENTITIES) -> RunWriter:
        """A new RUNNING run in ``experiment`` (nested under ``parent_run_id``); its writer,
        with ``params`` queued.  The caller ends it (:meth:`RunWriter.terminate`)."""
        all_tags = dict(tags)
        if parent_run_id:
            all_tags[TAG_PARENT_RUN] = parent_run_id
        run = self.client.create_run(self.experiment_id(experiment), run_name=run_name,
                                     tags=all_tags)
        writer = self.writer(run.info.run_id, flush_every=flush_every)
        if params:
            writer.log_params(params)
        return writer

    @contextmanager
    def start_run(self, experiment: str, *, run_name: str, tags: Mapping[str, str],
                  params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
                  flush_every: int = MAX_ENTITIES) -> Iterator[RunWriter]:
        """:meth:`create_run`, ended FINISHED when the block completes, FAILED when it raises
        (a rerun with the same ``run_key`` redoes it), KILLED on Ctrl-C."""
        run = self.create_run(experiment, run_name=run_name, tags=tags, params=params,
                              parent_run_id=parent_run_id, flush_every=flush_every)
        try:
            yield run
            run.flush()
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            try:
                run.flush()
            except Exception:  # the error that ended the block is the one to raise
                pass
            run.client.set_terminated(run.run_id, status)
            raise
        run.client.set_terminated(run.run_id, "FINISHED")
