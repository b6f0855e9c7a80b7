"""Stage ``tune``: an Optuna study of ``tune.target`` -- a quick no-op unless ``tune.enabled``.

    python pipelines/tune.py --original data/preprocessed/clf --normalized data/normalized \\
        --template data/template/template.json --out reports/tuning [--params params.yaml]

Disabled (the default) it only writes ``<out>/status.json`` saying so.  Enabled it creates or
resumes the study ``tune.study`` (storage ``tune.storage``, default ``.optuna/journal.log``) until
it has ``tune.n_trials`` finished trials, then writes the plots, ``<study>_best.yaml`` and the
``dvc exp run -S ...`` line to apply them (see docs/tuning.md).  Same as ``deepfn tune``: both
run :func:`deepfn.tuning.stage.run_tune`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from deepfn.stage import run_stage, stage_parser
from deepfn.tuning.stage import TUNE


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__)
    p.add_argument("--original", type=Path, required=True,
                   help="classifier corpus (data/preprocessed/clf)")
    p.add_argument("--normalized", type=Path, default=None,
                   help="normalized corpus (data/normalized)")
    p.add_argument("--template", type=Path, required=True, help="data/template/template.json")
    p.add_argument("--ae", type=Path, default=None,
                   help="autoencoder corpus for the normalizer (default: <original>/../ae)")
    p.add_argument("--out", type=Path, required=True, help="output directory (reports/tuning)")
    return run_stage(TUNE, **vars(p.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
