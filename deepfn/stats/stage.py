"""``run_stats``: the stats stage end to end.

    runs = fetch_runs(...)                 # MLflow search API, paginated
    analysis = analyse(...)                # cells, t-tests, Table 5, findings, Figs. 4-7 data
    build every output in a temp dir       # CSVs, markdown, PNGs, metrics.json, plots/
    log them to a run in `deepfn-stats`    # same files as artifacts, headline numbers as metrics
    move them into place                   # file by file (os.replace), others' files untouched

Outputs under ``out_dir`` (see :data:`OUTPUTS`): ``table5.csv``, ``table5.md``, ``tests.csv``,
``report.md``, ``metrics.json``, ``figures/*.png``, ``plots/*.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.stats.figures import write_figures
from deepfn.stats.report import report_markdown, table5_markdown
from deepfn.stats.runs import PAGE_SIZE, RunTables, display_uri, fetch_runs
from deepfn.stats.tables import Analysis, analyse, headline_metrics, plot_frames
from deepfn.tracking import EXPERIMENT_STATS, Store, common_tags, run_key
from deepfn.tracking import names as n

__all__ = ["OUTPUTS", "run_stats", "write_outputs", "STATS"]

OUTPUTS = ("table5.csv", "table5.md", "tests.csv", "report.md", "metrics.json",
           "figures/table5_bars.png", "figures/fig4_per_au.png", "figures/fig5_gender.png",
           "figures/fig6_skin.png", "figures/fig7_dataset.png", "plots/table5.csv",
           "plots/per_au.csv", "plots/combinations.csv")


def _counts(tables: RunTables) -> dict[str, int]:
    p = tables.participants
    return {"n_runs": len(tables.runs), "n_observations": len(p),
            "n_participants": int(p["participant"].nunique()) if len(p) else 0,
            "n_repetitions": int(p["repetition"].nunique()) if len(p) else 0}


def write_outputs(tmp: Path, tables: RunTables, a: Analysis,
                  stats_run_id: str | None = None) -> dict[str, Any]:
    """Write every file of :data:`OUTPUTS` under ``tmp``; the headline metrics."""
    (tmp / "plots").mkdir(parents=True, exist_ok=True)
    # 6 significant digits: tiny p-values stay visible (not 0.0)
    a.table5.to_csv(tmp / "table5.csv", index=False, float_format="%.6g")
    a.tests.to_csv(tmp / "tests.csv", index=False, float_format="%.6g")
    (tmp / "table5.md").write_text("# Table 5: paper vs ours\n\n"
                                   + table5_markdown(a.table5, a.correction))
    for name, df in plot_frames(a.cells, a.per_au, a.combinations).items():
        df.to_csv(tmp / "plots" / f"{name}.csv", index=False)
    figures = write_figures(tmp / "figures", a.cells, a.per_au, a.combinations)
    (tmp / "report.md").write_text(report_markdown(
        a, tables, figures=[f"figures/{p.name}" for p in figures], stats_run_id=stats_run_id))
    metrics = headline_metrics(a.table5, _counts(tables))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif isinstance(v, int | float):
            out[f"{prefix}{k}"] = float(v)
    return out


def _move_into_place(tmp: Path, out: Path) -> list[str]:
    moved = []
    for rel in OUTPUTS:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dest)
        moved.append(str(dest))
    return moved


def run_stats(settings: Settings, *, manifest: str | Path | None,
              out: str | Path = "reports", uri: str | None = None, filter: str | None = None,
              max_results: int = PAGE_SIZE) -> dict[str, Any]:
    """Table 5, the tests, the figures and the report from the experiments' MLflow runs.

    ``manifest`` (``results/experiments.json``) selects its run ids; ``None`` selects all
    FINISHED model runs of ``deepfn-au`` matching ``filter`` (an MLflow filter string such as
    ``"tags.profile = 'paper'"``).  ``uri``: tracking URI; without it ``MLFLOW_TRACKING_URI``,
    then ``tracking.uri`` of ``settings``, then the manifest's, then the project store.  Uses
    ``settings.stats`` (alpha, correction).  Returns the headline metrics, the files written,
    the stats run id and the fetch time.
    """
    s = settings.stats
    tables = fetch_runs(uri, manifest, filter, max_results=max_results,
                        configured_uri=settings.tracking.uri)
    a = analyse(tables.participants, tables.per_au, alpha=s.alpha, correction=s.correction,
                runs=tables.runs)
    man = tables.manifest
    data_version = ",".join(tables.distinct(n.TAG_DATA_VERSION)) or (
        man.data_version if man and man.data_version else "unknown")
    tags = {**common_tags(stage="stats", profile=",".join(tables.distinct(n.TAG_PROFILE)) or
                          "unknown", data_version=data_version),
            n.TAG_SOURCE_EXPERIMENT: tables.experiment,
            n.TAG_SOURCE_URI: display_uri(tables.uri),
            n.TAG_MANIFEST: man.path if man else "",
            n.TAG_MANIFEST_SHA256: man.sha256 if man else "",
            n.TAG_FILTER: tables.filter_string, n.TAG_N_RUNS: str(len(tables.runs)),
            n.TAG_RUN_KEY: run_key(manifest=man.sha256 if man else None,
                                   filter=tables.filter_string, alpha=s.alpha,
                                   correction=s.correction)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from mlflow.exceptions import MlflowException

    store = Store(tables.uri)
    try:
        with store.start_run(EXPERIMENT_STATS, run_name="stats", tags=tags,
                             params={"stats.alpha": s.alpha, "stats.correction": s.correction,
                                     "filter": tables.filter_string}) as run:
            tmp = Path(tempfile.mkdtemp(prefix=".stats.", suffix=".tmp", dir=out))
            try:
                metrics = write_outputs(tmp, tables, a, run.run_id)
                run.log_metrics(_flat(metrics))
                run.flush()  # params and metrics in, then the files: nothing moves before
                run.log_artifacts(tmp)
                files = _move_into_place(tmp, out)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except MlflowException as exc:  # e.g. a server-only artifact store reached through sqlite
        first = str(exc).strip().splitlines()[0].split(". ")[0][:300]
        raise DeepFNError(f"cannot log the stats run to {display_uri(tables.uri)}: {first}; "
                          "nothing was written") from None
    findings = a.table5.set_index("split")[[f"finding_{f}" for f in "abcd"]]
    return {"metrics": metrics, "files": files, "mlflow_run_id": run.run_id,
            "fetch_seconds": tables.seconds, "findings": findings.to_dict(orient="index"),
            **_counts(tables)}


def _stage(s: Settings, progress: bool, *, manifest: Path | None, out: Path,
           uri: str | None = None, filter: str | None = None) -> str:
    r = run_stats(s, manifest=manifest, out=out, uri=uri, filter=filter)
    mark = {"yes": "y", "no": "n", "n/a": "-"}
    found = ", ".join(f"{split} " + "".join(mark[v[f"finding_{f}"]] for f in "abcd")
                      for split, v in r["findings"].items())
    return (f"{r['n_runs']} runs, {r['n_observations']} participant observations "
            f"({r['fetch_seconds']:.1f} s to fetch); findings a-d (y/n/-): {found}; "
            f"report: {Path(out) / 'report.md'}; MLflow run {r['mlflow_run_id']}")


# `pipelines/stats.py` and `deepfn stats` run it through deepfn.stage.run_stage
STATS = Stage("stats", _stage, torch=False)
