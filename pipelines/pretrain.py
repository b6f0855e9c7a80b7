"""Stage ``pretrain``: warm start (beyond the paper, §6) -- E and D^y trained on the template.

    python pipelines/pretrain.py --template data/template --out models/pretrained.pt \\
        [--params params.yaml]

Trains for ``pretrain.iterations`` (0: writes the seeded init, so the file always exists), copies
D^y into D^x, logs a run to the ``deepfn-normalizer`` MLflow experiment.  A killed run resumes
from ``.deepfn/work/pretrain/`` when the stage reruns.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from deepfn.stage import run_stage, stage_parser


def _body(args: argparse.Namespace) -> None:
    from deepfn.config import load_settings
    from deepfn.normalizer.jobs import run_pretrain
    from deepfn.stage import configure_threads

    settings = load_settings(args.params)
    configure_threads()
    info = run_pretrain(settings, template_dir=args.template, out=args.out,
                        work_dir=args.work_dir)
    print(f"pretrained: {info['path']} ({settings.pretrain.iterations} iterations, "
          f"sha256 {info['sha256'][:12]})")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--template", required=True, help="template corpus dir (data/template)")
    p.add_argument("--out", required=True, help="model file to write (models/pretrained.pt)")
    p.add_argument("--work-dir", default=".deepfn/work/pretrain",
                   help="resumable checkpoints, outside DVC outs (default: %(default)s)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
