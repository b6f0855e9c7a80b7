"""Stage ``normalize`` (one per subject): train the subject's DeepFN autoencoder (Eq. 1).

    python pipelines/normalize.py --subject F001 --data data/preprocessed/ae \\
        --template data/template --pretrained models/pretrained.pt \\
        --out models/normalizers/F001.pt [--params params.yaml] [--work-dir DIR]

Starts from ``models/pretrained.pt`` when ``normalize.warm_start`` is true, else from a seeded
init; checkpoints to ``.deepfn/work/normalize/<subject>-<confighash>.pt`` every
``normalize.checkpoint_every`` iterations (a killed run resumes there); logs one run per subject
(metrics, preview PNG, checkpoint hash) to the ``deepfn-normalizer`` MLflow experiment.
Same as ``deepfn normalize``: both run :func:`deepfn.normalizer.jobs.run_normalize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.normalizer.stage import NORMALIZE
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--subject", required=True, help="subject id (F001)")
    p.add_argument("--data", type=Path, required=True,
                   help="AE-resolution corpus (data/preprocessed/ae)")
    p.add_argument("--template", type=Path, required=True,
                   help="template corpus dir (data/template)")
    p.add_argument("--pretrained", type=Path, required=True,
                   help="warm start (models/pretrained.pt)")
    p.add_argument("--out", type=Path, required=True,
                   help="model file to write (models/normalizers/<subject>.pt)")
    p.add_argument("--work-dir", type=Path, default=None, help="resumable checkpoints, outside "
                   "DVC outs (default: .deepfn/work/normalize)")
    return run_stage(NORMALIZE, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
