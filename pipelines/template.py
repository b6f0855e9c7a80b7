"""Stage ``template``: pick the template subject by the paper's rule (§3.2).

    python pipelines/template.py --data data/preprocessed/ae --out data/template \\
        [--params params.yaml]

Same as ``deepfn template``: both run :func:`deepfn.data.template.run_template`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.data.template import TEMPLATE
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--data", type=Path, required=True, help="preprocessed AE-resolution corpus")
    p.add_argument("--out", type=Path, required=True, help="template directory (data/template)")
    return run_stage(TEMPLATE, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
