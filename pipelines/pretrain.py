"""Stage ``pretrain``: warm start (beyond the paper, §6) -- E and D^y trained on the template.

    python pipelines/pretrain.py --template data/template --out models/pretrained.pt \\
        [--params params.yaml] [--work-dir .deepfn/work/pretrain]

Trains for ``pretrain.iterations`` (0: writes the seeded init, so the file always exists), copies
D^y into D^x, logs a run to the ``deepfn-normalizer`` MLflow experiment.  A killed run resumes
from the work dir when the stage reruns.  Same as ``deepfn pretrain``: both run
:func:`deepfn.normalizer.jobs.run_pretrain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.normalizer.stage import PRETRAIN
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--template", type=Path, required=True,
                   help="template corpus dir (data/template)")
    p.add_argument("--out", type=Path, required=True,
                   help="model file to write (models/pretrained.pt)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="resumable checkpoints, outside DVC outs (default: .deepfn/work/pretrain)")
    return run_stage(PRETRAIN, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
