"""Stage ``normalize`` (one per subject): train the subject's DeepFN autoencoder (Eq. 1).

    python pipelines/normalize.py --subject F001 --data data/preprocessed/ae \\
        --template data/template --pretrained models/pretrained.pt \\
        --out models/normalizers/F001.pt [--params params.yaml]

Starts from ``models/pretrained.pt`` when ``normalize.warm_start`` is true, else from a seeded
init; checkpoints to ``.deepfn/work/normalize/<subject>-<confighash>.pt`` every
``normalize.checkpoint_every`` iterations (a killed run resumes there); logs one run per subject
(metrics, preview PNG, checkpoint hash) to the ``deepfn-normalizer`` MLflow experiment.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    from deepfn.config import load_settings
    from deepfn.normalizer.jobs import run_normalize
    from deepfn.stage import configure_threads

    settings = load_settings(args.params)
    configure_threads()
    info = run_normalize(settings, subject=args.subject, data_dir=args.data,
                         template_dir=args.template, pretrained=args.pretrained, out=args.out,
                         work_dir=args.work_dir)
    print(f"normalizer {args.subject}: {info['path']} ({info['iterations']} iterations, "
          f"loss_subject {info.get('final_loss_subject', float('nan')):.4f}, "
          f"loss_template {info.get('final_loss_template', float('nan')):.4f})")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--subject", required=True, help="subject id (F001)")
    p.add_argument("--data", required=True, help="AE-resolution corpus (data/preprocessed/ae)")
    p.add_argument("--template", required=True, help="template corpus dir (data/template)")
    p.add_argument("--pretrained", required=True, help="warm start (models/pretrained.pt)")
    p.add_argument("--out", required=True, help="model file to write "
                   "(models/normalizers/<subject>.pt)")
    p.add_argument("--work-dir", default=".deepfn/work/normalize",
                   help="resumable checkpoints, outside DVC outs (default: %(default)s)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
