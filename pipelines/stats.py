"""Stage ``stats``: Table 5, the paper's t-tests, Figs. 4-7 and the report from MLflow runs.

    python pipelines/stats.py --manifest results/experiments.json --out reports \\
        [--params params.yaml]

Reads the runs listed in the experiments manifest through MLflow's search API (the tracking URI
is ``MLFLOW_TRACKING_URI``, else ``tracking.uri`` of params.yaml), uses ``stats.alpha`` and
``stats.correction``, writes ``reports/{table5.csv,table5.md,tests.csv,report.md,metrics.json}``,
``reports/figures/*.png`` and ``reports/plots/*.csv``, and logs them to ``deepfn-stats``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    from deepfn.config import load_settings
    from deepfn.stats import run_stats

    settings = load_settings(args.params)
    result = run_stats(args.manifest, args.out, None, settings)
    found = result["findings"]
    mark = {"yes": "y", "no": "n", "n/a": "-"}
    summary = ", ".join(f"{split} " + "".join(mark[v[f"finding_{f}"]] for f in "abcd")
                        for split, v in found.items())
    print(f"stats: {result['n_runs']} runs, {result['n_observations']} participant observations "
          f"({result['fetch_seconds']:.1f} s to fetch); findings a-d (y/n/-): {summary}; "
          f"report: {args.out}/report.md; MLflow run {result['mlflow_run_id']}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="results/experiments.json",
                        help="experiments manifest (default: results/experiments.json)")
    parser.add_argument("--out", default="reports", help="output directory (default: reports)")
    return run_stage(_body, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
