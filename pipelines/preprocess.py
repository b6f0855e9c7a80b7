"""Stage ``preprocess``: histogram equalization + resize to the AE and classifier resolutions.

    python pipelines/preprocess.py --raw data/raw --out data/preprocessed [--params params.yaml]

Same as ``deepfn preprocess``: both run :func:`deepfn.data.preprocess.run_preprocess`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.data.preprocess import PREPROCESS
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--raw", type=Path, required=True, help="raw corpus (data/raw)")
    p.add_argument("--out", type=Path, required=True,
                   help="output directory (data/preprocessed)")
    return run_stage(PREPROCESS, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
