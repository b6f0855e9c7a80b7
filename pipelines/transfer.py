"""Stage ``transfer``: every normalization method over the corpus + normalization diagnostics.

    python pipelines/transfer.py --data data/preprocessed/ae --models models/normalizers \\
        --out data/normalized --reports reports/normalization [--params params.yaml]

Every subject's frames go through its own normalizer (``models/normalizers/<subject>.pt``) and
through the person-calibration baselines (``person_mean``, ``person_median``), are resized to
``preprocess.clf_size`` and written as one corpus per method, ``data/normalized/<method>/``
(labels copied, manifest source = the method; deepfn/normalizer/methods.py).
``reports/normalization/`` gets ``metrics.json`` (identity-leakage and expression probes per
method, group gaps), ``fig2_group_averages.png`` and ``examples.png``; a ``transfer`` run in the
``deepfn-normalizer`` MLflow experiment gets the same.  Same as ``deepfn transfer``: both run
:func:`deepfn.normalizer.transfer.run_transfer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.normalizer.transfer import TRANSFER
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--data", type=Path, required=True,
                   help="AE-resolution corpus (data/preprocessed/ae)")
    p.add_argument("--models", type=Path, required=True,
                   help="normalizers dir (models/normalizers)")
    p.add_argument("--out", type=Path, required=True,
                   help="normalized corpora to write, one per method (data/normalized)")
    p.add_argument("--reports", type=Path, required=True,
                   help="diagnostics dir (reports/normalization)")
    return run_stage(TRANSFER, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
