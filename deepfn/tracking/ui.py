"""Links into the MLflow UI's runs table, where deepfn's runs are compared.

MLflow 3.x opens an experiment on the view of the UI's *workflow type*: "GenAI apps & agents"
(the default: an overview of traces and prompts) or "Machine learning" (the runs table).  The
workflow type comes from the URL (``?workflowType=machine_learning``) or from the type the
browser last chose in the UI's top bar; the experiment's ``mlflow.experimentKind`` tag (which
deepfn sets to ``custom_model_development``) does not decide it.  So ``make ui`` prints a direct
link to each experiment's runs table::

    python -m deepfn.tracking.ui --uri sqlite:///mlruns/mlflow.db --base http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from deepfn.tracking.names import EXPERIMENTS
from deepfn.tracking.store import Store, display_uri

__all__ = ["DEFAULT_BASE_URL", "runs_url", "runs_links", "main"]

DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def runs_url(base_url: str, experiment_id: str, filter_string: str = "") -> str:
    """The runs table of an experiment (in the UI's "Machine learning" view), optionally
    filtered, e.g. ``tags.group = 'person' and tags.normalization = 'deepfn'``."""
    query = {"workflowType": "machine_learning"}
    if filter_string:
        query["searchFilter"] = filter_string
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def runs_links(store: Store, base_url: str = DEFAULT_BASE_URL,
               experiments: Sequence[str] = EXPERIMENTS) -> list[tuple[str, str]]:
    """``(experiment, runs URL)`` of each deepfn experiment the store holds (none is created)."""
    out = []
    for name in experiments:
        exp_id = store.find_experiment_id(name)
        if exp_id is not None:
            out.append((name, runs_url(base_url, exp_id)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print the MLflow UI runs link of each deepfn "
                                "experiment.")
    p.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI, then "
                   "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--base", default=DEFAULT_BASE_URL, help="where the UI listens")
    args = p.parse_args(argv)
    store = Store(args.uri)
    db = store.uri.removeprefix("sqlite:///") if store.uri.startswith("sqlite:///") else None
    if db is not None and not Path(db).is_file():
        print(f"no MLflow store at {db} yet: run the pipeline first (make run)")
        return 0
    links = runs_links(store, args.base)
    if not links:
        print(f"no deepfn experiments in {display_uri(store.uri)} yet: run the pipeline first")
    for name, url in links:
        print(f"  {name:<18} {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
