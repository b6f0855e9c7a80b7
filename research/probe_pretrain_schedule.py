"""Question: does a cosine learning-rate decay let a shorter template pretrain reach the loss of
the default 10,000 constant-rate iterations?

Runs the pretrain stage's own function (:func:`deepfn.normalizer.jobs.run_pretrain`) on an
existing template corpus with ``pretrain.iterations`` from the command line; with
``--schedule cosine`` the normalizer's Adam takes ``lr * (1 + cos(pi * step / iterations)) / 2``
at every step (patched in for the probe; the library keeps a constant rate).  Prints the final
template loss; the constant-rate curve of a default run is in its MLflow store
(``deepfn-normalizer``, run ``pretrain-<template>``, metric ``loss_template``).

    PYTHONPATH=. .venv/bin/python research/probe_pretrain_schedule.py \\
        --template data/template --iterations 6000 --schedule cosine --work /tmp/pretrain-probe

Default profile, template M006 (docs/results.md, "Default pipeline" at 0f65932; losses are
means over the last ``normalize.log_every`` iterations, 10 when measured): cosine over 6,000
iterations ended at 0.0177; the constant rate was at 0.0175 after 6,000 and 0.0163 after
10,000 iterations.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--template", default="data/template", help="template corpus directory")
    ap.add_argument("--iterations", type=int, default=6000)
    ap.add_argument("--schedule", choices=("constant", "cosine"), default="cosine")
    ap.add_argument("--work", default="/tmp/pretrain-probe",
                    help="scratch directory: model, checkpoints and its own MLflow store")
    args = ap.parse_args(argv)

    import deepfn.normalizer.train as train
    from deepfn.config import load_settings
    from deepfn.normalizer.jobs import run_pretrain

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    s = load_settings(args.params, {"pretrain.iterations": args.iterations,
                                    "tracking.uri": f"sqlite:///{work / 'mlflow.db'}"})
    base, total = s.normalize.lr, args.iterations

    class CosineAdam(train.Adam):
        def step(self) -> None:
            if args.schedule == "cosine":
                self.lr = base * 0.5 * (1 + math.cos(math.pi * self.step_count / total))
            super().step()

    train.Adam = CosineAdam  # type: ignore[misc]
    t0 = time.perf_counter()
    info = run_pretrain(s, template_dir=args.template, out=work / f"pretrained-{args.schedule}.pt",
                        work_dir=work / "checkpoints", progress=True)
    print(f"{args.iterations} iterations, {args.schedule}: final loss_template "
          f"{info.get('final_loss_template', float('nan')):.4f} "
          f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
