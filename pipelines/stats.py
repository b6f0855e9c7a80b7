"""Stage ``stats``: Table 5, the paper's t-tests, Figs. 4-7 and the report from MLflow runs.

    python pipelines/stats.py --manifest results/experiments.json --out reports \\
        [--params params.yaml]

Reads the runs listed in the experiments manifest through MLflow's search API (the tracking URI
is ``MLFLOW_TRACKING_URI``, else ``tracking.uri`` of params.yaml), uses ``stats.alpha`` and
``stats.correction``, writes ``reports/{table5.csv,table5.md,tests.csv,report.md,metrics.json}``,
``reports/figures/*.png`` and ``reports/plots/*.csv``, and logs them to ``deepfn-stats``.
Same as ``deepfn stats``: both run :func:`deepfn.stats.stage.run_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.stage import run_stage, stage_parser
from deepfn.stats.stage import STATS


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--manifest", type=Path, default=Path("results/experiments.json"),
                   help="experiments manifest (default: results/experiments.json)")
    p.add_argument("--out", type=Path, default=Path("reports"),
                   help="output directory (default: reports)")
    return run_stage(STATS, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
