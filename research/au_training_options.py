"""Question: do training options the trainer does not offer lift person-independent AU F1?

Random affine augmentation (kornia ``RandomAffine``), test-time flip averaging and a cosine
learning-rate decay, each switched on by an environment variable on top of
``research/au_detectability.py`` (same corpus, splits, seeds and flags).  The probe runs the
library's own :func:`deepfn.au.trainer.fit_classifier` and wraps three of its pieces for the
run: the loss function (the affine is applied to each training batch, after the mirror), the
optimizer (its learning rate follows the cosine) and ``predict`` (TTA); nothing in the library
changes.  Results in research/README.md ("Second pass").

    AFF=5,0.06,0.05 PYTHONPATH=. .venv/bin/python research/au_training_options.py \\
        --roster 19 --frames 30 --tag c15 --reps 12 --epochs 8 --tune --flip
    TTA=1 ... ; COS=1 ...

``AFF=degrees,translate,scale``: random affine per training frame; ``TTA=1``: probabilities
averaged over each frame and its mirror image (validation and test); ``COS=1``: cosine decay
of the learning rate to 0 over the run.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import au_detectability as ad  # noqa: E402

from deepfn.au import trainer as T  # noqa: E402

AFF = os.environ.get("AFF")
TTA = os.environ.get("TTA") == "1"
COS = os.environ.get("COS") == "1"
_steps = {"total": 1}  # Adam steps of the fit in progress (set by fit_classifier below)


def _augmenter() -> Any:
    if not AFF:
        return None
    import kornia.augmentation as K

    deg, shift, scale = map(float, AFF.split(","))
    return K.RandomAffine(degrees=deg, translate=(shift, shift), scale=(1 - scale, 1 + scale),
                          padding_mode="border", p=1.0)


AUG = _augmenter()
_library_loss_fn, _library_predict = T._loss_fn, T.predict


def loss_fn(model, compute):
    """The library's loss, on affine-transformed training batches (after the mirror)."""
    base = _library_loss_fn(model, compute)
    if AUG is None:
        return base
    return lambda xb, yb, w: base(AUG(xb).contiguous(memory_format=torch.channels_last), yb, w)


def predict(model, x, compute):
    p = _library_predict(model, x, compute)
    if TTA:
        mirrored = x.flip(-1).contiguous(memory_format=torch.channels_last)
        p = 0.5 * (p + _library_predict(model, mirrored, compute))
    return p


class CosineAdam(torch.optim.Adam):
    """torch's Adam whose learning rate decays to 0 along a cosine over the fit's steps."""

    def step(self, closure=None):  # type: ignore[override]
        t = self.state_dict()["state"].get(0, {}).get("step", 0)
        for g in self.param_groups:
            g.setdefault("base_lr", g["lr"])
            g["lr"] = g["base_lr"] * 0.5 * (1 + math.cos(math.pi * float(t) / _steps["total"]))
        return super().step(closure)


def fit_classifier(x, y, xv, yv, n_aus, cfg, seed, on_epoch=None):
    """The library's fit with the options wrapped in (eager: no compiled graph to bypass)."""
    _steps["total"] = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    return T.fit_classifier(x, y, xv, yv, n_aus, cfg, seed, on_epoch)


def main(argv: list[str] | None = None) -> None:
    T._loss_fn = loss_fn
    T.predict = predict
    if COS:
        T.torch.optim.Adam = CosineAdam  # the trainer looks Adam up at each fit
    ad.fit_classifier = fit_classifier
    ad.predict = predict
    ad.main(argv)


if __name__ == "__main__":
    main()
