"""Stage ``transfer``: Eq. 2 over the corpus -> the normalized corpus + normalization diagnostics.

    python pipelines/transfer.py --data data/preprocessed/ae --models models/normalizers \\
        --out data/normalized --reports reports/normalization [--params params.yaml]

Every subject's frames go through its own normalizer (``models/normalizers/<subject>.pt``),
are resized to ``preprocess.clf_size`` and written as a corpus (labels copied, manifest source
``deepfn``).  ``reports/normalization/`` gets ``metrics.json`` (identity-leakage and expression
probes, group gaps), ``fig2_group_averages.png`` and ``examples.png``; a ``transfer`` run in the
``deepfn-normalizer`` MLflow experiment gets the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    from deepfn.config import load_settings
    from deepfn.normalizer.transfer import run_transfer
    from deepfn.stage import configure_threads

    settings = load_settings(args.params)
    configure_threads()
    m = run_transfer(settings, data_dir=args.data, models_dir=args.models, out_dir=args.out,
                     reports_dir=args.reports)
    ident = m["identity_accuracy"]
    expr = m["expression_r"]
    print(f"normalized {m['n_subjects']} subjects onto {m['template_subject']}: identity probe "
          f"{ident['before']:.2f} -> {ident['after']:.2f} (chance {ident['chance']:.2f}), "
          f"expression r {expr['mean_before'] or float('nan'):.2f} -> "
          f"{expr['mean_after'] or float('nan'):.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="AE-resolution corpus (data/preprocessed/ae)")
    p.add_argument("--models", required=True, help="normalizers dir (models/normalizers)")
    p.add_argument("--out", required=True, help="normalized corpus to write (data/normalized)")
    p.add_argument("--reports", required=True, help="diagnostics dir (reports/normalization)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
