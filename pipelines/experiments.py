"""Stage ``experiments``: train and evaluate every AU model (paper §4), log runs to MLflow.

    python pipelines/experiments.py --original data/preprocessed/clf \\
        --normalized data/normalized --template data/template/template.json \\
        --out results/experiments.json [--params params.yaml]

Rerunning resumes: runs already FINISHED in MLflow (same ``run_key``) are skipped.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from deepfn.config import load_settings
from deepfn.stage import configure_threads, run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    from deepfn.au.experiments import run_experiments

    settings = load_settings(args.params)
    logging.basicConfig(level=logging.INFO, format="experiments: %(message)s")
    configure_threads()
    m = run_experiments(settings, args.original, args.normalized, args.template, args.out)
    n = m["counts"]
    print(f"experiments: {n['runs']} runs ({n['runs_logged']} new, {n['runs_skipped']} "
          f"already finished) from {n['models']} models -> {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--original", required=True, help="original corpus (data/preprocessed/clf)")
    p.add_argument("--normalized", required=True, help="DeepFN corpus (data/normalized)")
    p.add_argument("--template", required=True, help="template.json (data/template)")
    p.add_argument("--out", required=True, help="run manifest to write (results/...json)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
