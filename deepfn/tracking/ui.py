"""Links into the MLflow UI's runs table, where deepfn's runs are compared.

MLflow 3.17 opens an experiment on the view of the UI's *workflow type*: "GenAI" (the default:
an overview of traces, an assistant panel) or "Model training" (the runs table).  The workflow
type comes from the URL (``?workflowType=machine_learning``) or from the toggle the browser last
used in the UI's sidebar; the experiment's ``mlflow.experimentKind`` tag (which deepfn sets to
``custom_model_development``) does not decide it in 3.17, and there is no server setting.  So
``make ui`` prints a direct link to each experiment's runs table::

    python -m deepfn.tracking.ui --uri sqlite:///mlruns/mlflow.db --base http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from deepfn.tracking.names import (
    EXPERIMENT_AU,
    EXPERIMENTS,
    KIND_MODEL,
    TAG_KIND,
    summary_metric,
)
from deepfn.tracking.store import Store, display_uri, resolve_tracking_uri

__all__ = ["DEFAULT_BASE_URL", "MODEL_RUNS", "runs_url", "runs_links", "main"]

DEFAULT_BASE_URL = "http://127.0.0.1:5000"
MODEL_RUNS = f"tags.{TAG_KIND} = '{KIND_MODEL}'"


def runs_url(base_url: str, experiment_id: str, filter_string: str = "",
             order_by: str = "", ascending: bool = False) -> str:
    """The runs table of an experiment (in the UI's "Machine learning" view).

    ``filter_string``: an MLflow filter such as
    ``tags.group = 'person' and tags.normalization = 'deepfn'``.  ``order_by``: a column key
    such as ``metrics.`test/score```; the table then lists child runs as rows of their own
    (sorted by date, as by default, they sit folded under their parent run).
    """
    query = {"workflowType": "machine_learning"}
    if filter_string:
        query["searchFilter"] = filter_string
    if order_by:
        query.update(orderByKey=order_by, orderByAsc=str(ascending).lower())
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def runs_links(store: Store, base_url: str = DEFAULT_BASE_URL) -> list[tuple[str, str]]:
    """``(label, URL)``: the runs table of each deepfn experiment the store holds (none is
    created), then the experiments stage's model runs, best test score first."""
    out = []
    for name in EXPERIMENTS:
        exp_id = store.find_experiment_id(name)
        if exp_id is None:
            continue
        out.append((name, runs_url(base_url, exp_id)))
        if name == EXPERIMENT_AU:
            out.append((f"{name} models", runs_url(base_url, exp_id, MODEL_RUNS,
                                                   f"metrics.`{summary_metric('score')}`")))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print the MLflow UI runs link of each deepfn "
                                "experiment.")
    p.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI, then "
                   "sqlite:///mlruns/mlflow.db)")
    p.add_argument("--base", default=DEFAULT_BASE_URL, help="where the UI listens")
    args = p.parse_args(argv)
    uri = resolve_tracking_uri(args.uri)
    db = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if db is not None and not Path(db).is_file():  # (a Store would create it)
        print(f"no MLflow store at {db} yet: run the pipeline first (make run)")
        return 0
    store = Store(uri)
    links = runs_links(store, args.base)
    if not links:
        print(f"no deepfn experiments in {display_uri(store.uri)} yet: run the pipeline first")
        return 0
    print("runs in the MLflow UI (filter in the search box, e.g. "
          "tags.group = 'person' and tags.normalization = 'deepfn'):")
    for label, url in links:
        print(f"  {label:<20} {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
