"""MLflow conventions in one place: the store and its client, names, run keys, the batched writer.

    from deepfn.tracking import EXPERIMENT_AU, Store, common_tags
    store = Store(configured=settings.tracking.uri)     # explicit URI > MLFLOW_TRACKING_URI > this
    with store.start_run(EXPERIMENT_AU, run_name="x", tags=common_tags(...)) as run:
        run.log_metrics({"test/score": 0.6})            # queued; sent in log_batch calls

Modules: :mod:`~deepfn.tracking.store` (:class:`Store`, URI precedence, experiments, search),
:mod:`~deepfn.tracking.writer` (:class:`RunWriter`, the one batched writer),
:mod:`~deepfn.tracking.names` (experiment, tag and metric names), :mod:`~deepfn.tracking.ui`
(links to the MLflow UI's runs view), :mod:`~deepfn.tracking.server` (``make tracking-server``:
MLflow on PostgreSQL).  Importing this package does not import mlflow.

Every deepfn run carries :func:`common_tags` (``stage``, ``profile``, ``data_version``,
``git_commit``) plus the tags of its kind; re-runnable work carries a deterministic ``run_key``
so a rerun skips what already finished (:meth:`Store.finished_by_key`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from deepfn.tracking.names import (
    EXPERIMENT_AU,
    EXPERIMENT_NORMALIZER,
    EXPERIMENT_STATS,
    EXPERIMENT_TUNING,
    EXPERIMENTS,
    TAG_DATA_VERSION,
    TAG_GIT_COMMIT,
    TAG_PROFILE,
    TAG_RUN_KEY,
    TAG_STAGE,
)
from deepfn.tracking.store import (
    DEFAULT_TRACKING_URI,
    ENV_TRACKING_URI,
    Store,
    display_uri,
    resolve_tracking_uri,
)
from deepfn.tracking.writer import RunWriter

__all__ = [
    "EXPERIMENT_NORMALIZER", "EXPERIMENT_AU", "EXPERIMENT_STATS", "EXPERIMENT_TUNING",
    "EXPERIMENTS", "TAG_RUN_KEY", "TAG_STAGE", "DEFAULT_TRACKING_URI", "ENV_TRACKING_URI",
    "resolve_tracking_uri", "display_uri", "Store", "RunWriter", "run_key", "git_commit",
    "common_tags", "flatten_params",
]


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
    return {TAG_STAGE: stage, TAG_PROFILE: profile, TAG_DATA_VERSION: data_version,
            TAG_GIT_COMMIT: git_commit()}


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
