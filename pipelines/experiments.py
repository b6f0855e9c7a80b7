"""Stage ``experiments``: train and evaluate every AU model (paper §4), log runs to MLflow.

    python pipelines/experiments.py --original data/preprocessed/clf \\
        --normalized data/normalized --template data/template/template.json \\
        --out results/experiments.json [--params params.yaml]

Rerunning resumes: runs already FINISHED in MLflow (same ``run_key``) are skipped.  Same as
``deepfn experiments``: both run :func:`deepfn.au.experiments.run_experiments`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.au.stage import EXPERIMENTS
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--original", type=Path, required=True,
                   help="original corpus (data/preprocessed/clf)")
    p.add_argument("--normalized", type=Path, required=True,
                   help="normalized corpora, one per method (data/normalized/<method>)")
    p.add_argument("--template", type=Path, required=True,
                   help="template.json (data/template)")
    p.add_argument("--out", type=Path, required=True,
                   help="run manifest to write (results/...json)")
    return run_stage(EXPERIMENTS, **vars(p.parse_args(argv)))


if __name__ == "__main__":  # the process strategy spawns workers: keep this guard
    raise SystemExit(main())
