"""The stats stage: Table 5, the paper's t-tests (and more), Figs. 4-7 and a report.

    python -m pipelines.stats --manifest results/experiments.json --out reports
    deepfn stats --tracking-uri http://127.0.0.1:5000 --out reports

Modules, in the order the data flows: ``runs`` (MLflow search -> tidy tables), ``tests`` (the
statistics), ``tables`` (cells, test family, findings), ``figures``, ``report`` (markdown),
``stage`` (:func:`run_stats`, files + the ``deepfn-stats`` MLflow run).  A fake store for
trying it without training: ``tests/stats/synthetic_runs.py``.  See ``docs/stats.md``.
"""

from deepfn.stats.runs import Manifest, RunTables, fetch_runs, load_manifest
from deepfn.stats.stage import OUTPUTS, run_stats
from deepfn.stats.tables import PAPER_TABLE5, Analysis, analyse, gap_is_significant
from deepfn.stats.tests import adjust, compare, describe, holm

__all__ = [
    "OUTPUTS", "run_stats", "Manifest", "RunTables", "fetch_runs", "load_manifest",
    "PAPER_TABLE5", "Analysis", "analyse", "gap_is_significant", "adjust", "compare",
    "describe", "holm",
]
