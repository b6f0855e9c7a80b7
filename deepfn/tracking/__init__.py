"""MLflow conventions in one place: the store, experiment names, tags, run keys.

The store is ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts`` (MLflow
>= 3.13 refuses the old file store).  ``MLFLOW_TRACKING_URI`` overrides it (e.g. a server).

Every deepfn run carries :func:`common_tags` (``profile``, ``git_commit``, ``data_version``,
``stage``) plus the tags of its kind; re-runnable work carries a deterministic ``run_key`` so a
rerun skips what already finished (:func:`finished_runs_by_key`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "EXPERIMENT_NORMALIZER", "EXPERIMENT_AU", "EXPERIMENT_STATS", "EXPERIMENT_TUNING",
    "DEFAULT_TRACKING_URI", "resolve_tracking_uri", "client", "experiment_id", "run_key",
    "git_commit", "common_tags", "start_run", "finished_runs_by_key", "flatten_params",
    "log_params_batch", "iter_runs",
]

EXPERIMENT_NORMALIZER = "deepfn-normalizer"
EXPERIMENT_AU = "deepfn-au"
EXPERIMENT_STATS = "deepfn-stats"
EXPERIMENT_TUNING = "deepfn-tuning"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"

# Tag names the stats stage and the MLflow UI filters rely on.
TAG_RUN_KEY = "run_key"
TAG_STAGE = "stage"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` > explicit ``uri`` > the project default; sqlite dirs are made."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _artifact_root(uri: str) -> str | None:
    """Artifacts live next to the sqlite file (``mlruns/artifacts``); servers choose their own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        return (db.parent / "artifacts").as_uri()
    return None


def client(uri: str | None = None):  # -> mlflow.MlflowClient (imported lazily: mlflow is slow)
    """A client of the resolved store, which also becomes the fluent API's (``mlflow.start_run``).

    ``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI`` as a side effect; left in place,
    the first store a process used would win every later :func:`resolve_tracking_uri` (whose
    rule is "the environment wins"), so a second store in the same process would silently get
    the first one's runs.  The user's environment is restored right after.
    """
    import mlflow

    uri = resolve_tracking_uri(uri)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    return mlflow.MlflowClient(tracking_uri=uri)


def experiment_id(name: str, uri: str | None = None) -> str:
    """The id of experiment ``name``, created (with artifacts under ``mlruns/``) if missing."""
    c = client(uri)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = _artifact_root(resolve_tracking_uri(uri))
    location = f"{root}/{name}" if root else None
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def run_key(**parts: Any) -> str:
    """A deterministic 16-hex key of the parts (condition, seed, repetition, data, params)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def common_tags(*, stage: str, profile: str, data_version: str) -> dict[str, str]:
    return {TAG_STAGE: stage, "profile": profile, "data_version": data_version,
            "git_commit": git_commit()}


def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings -> ``{"normalize.lr": "5e-05", ...}`` (MLflow params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key + "."))
        else:
            out[key] = str(list(v) if isinstance(v, tuple) else v)[:6000]
    return out


def log_params_batch(c, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        c.log_batch(run_id, params=items[i:i + 100])


@contextmanager
def start_run(experiment: str, *, run_name: str, tags: Mapping[str, str],
              params: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
              uri: str | None = None) -> Iterator[Any]:
    """Open an MLflow run (fluent API, so ``mlflow.log_*`` work inside) with the project's tags.

    A run whose body raises is marked FAILED (and a rerun with the same ``run_key`` redoes it);
    KeyboardInterrupt marks it KILLED.
    """
    import mlflow

    exp_id = experiment_id(experiment, uri)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=all_tags,
                           nested=mlflow.active_run() is not None)
    try:
        if params:
            log_params_batch(mlflow.MlflowClient(), run.info.run_id, params)
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


def iter_runs(c, experiment_ids: Sequence[str], filter_string: str = "", *,
              max_results: int = 1000, all_views: bool = False) -> Iterator[Any]:
    """Every run matching ``filter_string``, page by page (MLflow's ``page_token``)."""
    from mlflow.entities import ViewType

    view = ViewType.ALL if all_views else ViewType.ACTIVE_ONLY
    token = None
    while True:
        page = c.search_runs(list(experiment_ids), filter_string=filter_string,
                             run_view_type=view, max_results=max_results, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def finished_runs_by_key(experiment: str, uri: str | None = None,
                         filter_string: str = "") -> dict[str, str]:
    """``run_key -> run_id`` of FINISHED runs in ``experiment`` (paginated search)."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    flt = "attributes.status = 'FINISHED'" + (f" and {filter_string}" if filter_string else "")
    out: dict[str, str] = {}
    for r in iter_runs(c, [exp.experiment_id], flt):
        key = r.data.tags.get(TAG_RUN_KEY)
        if key:
            out.setdefault(key, r.info.run_id)
    return out
