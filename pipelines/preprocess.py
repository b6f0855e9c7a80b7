"""Stage ``preprocess``: histogram equalization + resize to the AE and classifier resolutions.

    python pipelines/preprocess.py --raw data/raw --out data/preprocessed [--params params.yaml]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deepfn.config import load_settings
from deepfn.data.preprocess import preprocess_corpus
from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    preprocess_corpus(args.raw, args.out, load_settings(args.params).preprocess)


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--raw", required=True, help="raw corpus (data/raw)")
    p.add_argument("--out", required=True, help="output directory (data/preprocessed)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
