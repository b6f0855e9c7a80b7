"""Stage ``synthesize``: build the raw corpus (synthetic FACS faces, or licensed BP4D/DISFA).

    python pipelines/synthesize.py --out data/raw [--params params.yaml]

``synthesize.source: synthetic`` renders ``synthesize.subjects`` with the project's renderer;
``licensed`` imports ``bp4d_root``/``disfa_root`` (see docs/importers.md) and checks that the
imported subjects are exactly ``synthesize.subjects`` (the roster DVC's per-subject stages use).
Same as ``deepfn synthesize``: both run :func:`deepfn.data.synthesize.run_synthesize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.data.synthesize import SYNTHESIZE
from deepfn.stage import run_stage, stage_parser


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--out", type=Path, required=True, help="corpus directory to write (data/raw)")
    return run_stage(SYNTHESIZE, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
