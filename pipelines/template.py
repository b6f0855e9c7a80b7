"""Stage ``template``: pick the template subject by the paper's rule (§3.2).

    python pipelines/template.py --data data/preprocessed/ae --out data/template
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deepfn.config import load_settings
from deepfn.data.template import select_template
from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    result = select_template(args.data, args.out, load_settings(args.params).template)
    print(f"template: {result['subject']} (median activations {result['median_count']:.1f})")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="preprocessed AE-resolution corpus")
    p.add_argument("--out", required=True, help="template directory (data/template)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
