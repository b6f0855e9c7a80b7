"""Stage ``synthesize``: build the raw corpus (synthetic FACS faces, or licensed BP4D/DISFA).

    python pipelines/synthesize.py --out data/raw [--params params.yaml]

``synthesize.source: synthetic`` renders ``synthesize.subjects`` with the project's renderer;
``licensed`` imports ``bp4d_root``/``disfa_root`` (see docs/importers.md) and checks that the
imported subjects are exactly ``synthesize.subjects`` (the roster DVC's per-subject stages use).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from deepfn.config import load_settings
from deepfn.data.corpus import read_subjects
from deepfn.errors import DeepFNError
from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    cfg = load_settings(args.params).synthesize
    out = Path(args.out)
    if cfg.source == "synthetic":
        from deepfn.data.synth import synthesize_corpus

        synthesize_corpus(out, cfg.subjects, seed=cfg.seed,
                          identity_strength=cfg.identity_strength,
                          frames_per_sequence=cfg.frames_per_sequence,
                          image_size=cfg.image_size)
        return
    from deepfn.data.importers import import_corpus

    import_corpus(out, bp4d_root=Path(cfg.bp4d_root) if cfg.bp4d_root else None,
                  disfa_root=Path(cfg.disfa_root) if cfg.disfa_root else None,
                  metadata_csv=Path(cfg.metadata or ""), image_size=cfg.image_size,
                  detector=cfg.detector)
    found = set(read_subjects(out / "subjects.csv").index)
    if found != set(cfg.subjects):
        extra, missing = sorted(found - set(cfg.subjects)), sorted(set(cfg.subjects) - found)
        raise DeepFNError(
            f"params.yaml: synthesize.subjects does not match the imported corpus "
            f"(not listed: {', '.join(extra) or '-'}; not found: {', '.join(missing) or '-'}); "
            "set synthesize.subjects to the imported ids"
        )


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="corpus directory to write (data/raw)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
