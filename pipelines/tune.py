"""Stage ``tune``: an Optuna study of ``tune.target`` -- a quick no-op unless ``tune.enabled``.

    python pipelines/tune.py --original data/preprocessed/clf --normalized data/normalized \\
        --template data/template/template.json --out reports/tuning [--params params.yaml]

Disabled (the default) it only writes ``<out>/status.json`` saying so.  Enabled it creates or
resumes the study ``tune.study`` (storage ``tune.storage``, default ``.optuna/journal.log``) until
it has ``tune.n_trials`` finished trials, then writes the plots, ``<study>_best.yaml`` and the
``dvc exp run -S ...`` line to apply them (see docs/tuning.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from deepfn.config import load_settings
from deepfn.stage import configure_threads, run_stage, stage_parser
from deepfn.utils.io import write_json


def _body(args: argparse.Namespace) -> None:
    settings = load_settings(args.params)
    t = settings.tune
    out = Path(args.out)
    if not t.enabled:
        write_json(out / "status.json", {
            "enabled": False, "target": t.target, "study": t.study,
            "reason": f"tune.enabled is false; set it true (or run `deepfn tune {t.target}`) "
                      "to run the study"})
        print(f"tune: disabled (tune.enabled: false) -> {out / 'status.json'}")
        return
    from deepfn.tuning import TuneData, tune

    configure_threads()
    data = TuneData(original=Path(args.original), template=Path(args.template),
                    normalized=Path(args.normalized) if args.normalized else None,
                    ae=Path(args.ae) if args.ae else None)
    summary = tune(settings, target=t.target, data=data, out_dir=out)
    write_json(out / "status.json", {
        "enabled": True, "target": t.target, "study": summary["study"],
        "trials": summary["trials"], "best": summary["best"],
        "best_export": summary["best_export"]})


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser(__doc__.splitlines()[0])
    p.add_argument("--original", required=True, help="classifier corpus (data/preprocessed/clf)")
    p.add_argument("--normalized", default=None, help="normalized corpus (data/normalized)")
    p.add_argument("--template", required=True, help="data/template/template.json")
    p.add_argument("--ae", default=None,
                   help="autoencoder corpus for the normalizer (default: <original>/../ae)")
    p.add_argument("--out", required=True, help="output directory (reports/tuning)")
    return run_stage(_body, p, argv)


if __name__ == "__main__":
    raise SystemExit(main())
