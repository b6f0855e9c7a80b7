"""Question: do training options the trainer does not offer lift person-independent AU F1?

Random affine augmentation (kornia ``RandomAffine``), test-time flip averaging and a cosine
learning-rate decay, each switched on by an environment variable on top of
``research/au_detectability.py`` (same corpus, splits, seeds and flags).  The probe swaps in its
own copy of :func:`deepfn.au.trainer.fit_classifier` (the library's loop plus the option) and
``predict`` (TTA); nothing in the library changes.  Results in research/README.md
("Options that did not help").

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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import au_detectability as ad  # noqa: E402

from deepfn.au import trainer as T  # noqa: E402
from deepfn.au.lenet import LeNet5  # noqa: E402
from deepfn.au.metrics import tune_thresholds, validation_f1  # noqa: E402

AFF = os.environ.get("AFF")
TTA = os.environ.get("TTA") == "1"
COS = os.environ.get("COS") == "1"


def _augmenter():
    if not AFF:
        return None
    import kornia.augmentation as K

    deg, shift, scale = map(float, AFF.split(","))
    return K.RandomAffine(degrees=deg, translate=(shift, shift), scale=(1 - scale, 1 + scale),
                          padding_mode="border", p=1.0)


AUG = _augmenter()


def predict(model, x, compute):
    p = T.predict(model, x, compute)
    if TTA:
        mirrored = x.flip(-1).contiguous(memory_format=torch.channels_last)
        p = 0.5 * (p + T.predict(model, mirrored, compute))
    return p


def fit_classifier(x, y, xv, yv, n_aus, cfg, seed, on_epoch=None):
    """The library's loop (deepfn.au.trainer.fit_classifier, eager) plus the options."""
    compute = cfg.compute
    torch.manual_seed(seed)
    gen = compute.generator(seed)
    model = compute.place(LeNet5(n_aus, x.shape[-1]), channels_last=True)
    loss_fn = T._loss_fn(model, compute)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           weight_decay=cfg.weight_decay, fused=True)
    n, bs = len(x), cfg.batch_size
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * math.ceil(n / bs))
             if COS else None)
    val_f1: list[float] = []
    best_f1, best_epoch, best_state = -math.inf, 0, {}
    fixed = np.full(n_aus, cfg.threshold)
    best_thr = fixed
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        mirror = (torch.rand(n, generator=gen) < 0.5) if cfg.flip else None
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = x[idx]
            if mirror is not None:
                xb = torch.where(mirror[i:i + bs, None, None, None], xb.flip(-1), xb)
            if AUG is not None:
                xb = AUG(xb).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(xb, y[idx], None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        probs = predict(model, xv, compute)
        thr = tune_thresholds(yv, probs, cfg.threshold) if cfg.tune_thresholds else fixed
        f1 = validation_f1(yv, probs, thr)
        val_f1.append(f1)
        if on_epoch is not None:
            on_epoch(epoch, model, thr)
        if best_epoch == 0 or (not math.isnan(f1) and f1 > best_f1):
            best_f1 = -math.inf if math.isnan(f1) else f1
            best_epoch, best_thr = epoch, thr
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return T.FitResult(model, [], val_f1, best_epoch, best_thr)


def main(argv: list[str] | None = None) -> None:
    ad.fit_classifier = fit_classifier
    ad.predict = predict
    ad.main(argv)


if __name__ == "__main__":
    main()
