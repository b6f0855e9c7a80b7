"""Probe: one jointly trained normalizer (shared E and D^y, one D^x per subject) at CPU budget.

    .venv/bin/python research/probe_joint_normalizer.py --data data/preprocessed/ae \\
        --template M006 [--iterations 3000] [--width 16] [--latent 256] [--lr 1e-3] \\
        [--size 64] [--out reports/joint_probe.png]

The alternative issue 3 names to per-subject training: every iteration takes a template batch
and a batch of the next subject (round robin), updates the shared encoder and template decoder
and that subject's decoder (Eq. 1, the same augmentation, bf16).  Prints the losses, then the
transfer diagnostics of ``deepfn.normalizer.diagnostics`` (identity probe, expression r) on
D^y(E(x)) of every subject, and writes an original | DeepFN example strip.  Results are in
docs/normalizer.md ("Quality at the CPU budget"); it is a probe, not a pipeline stage.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from deepfn.data.corpus import read_subject, read_subjects
from deepfn.normalizer.augment import AugmentParams, augment
from deepfn.normalizer.diagnostics import ProbeSet, summarize
from deepfn.normalizer.model import (
    ArchConfig,
    Decoder,
    DeepFNAutoencoder,
    glorot_init_,
    kaiming_init_,
)
from deepfn.normalizer.preview import grid_image, pick_preview_frames, reconstruct, save_png
from deepfn.normalizer.train import Adam, frames_to_tensor, l1_loss
from deepfn.normalizer.transfer import resize_frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--template", required=True)
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--init", choices=["torch", "glorot", "kaiming"], default="glorot",
                   help="glorot = deepfn's (glorot_init_); torch = PyTorch's default")
    p.add_argument("--crop", type=float, default=1.0,
                   help="keep the central fraction of each frame (before and after alike)")
    p.add_argument("--mean-face", action="store_true",
                   help="decoders on their person's mean face (normalize.mean_face)")
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--no-affine", action="store_true", help="random warp only (CPU recipe)")
    p.add_argument("--pretrained", default=None,
                   help="start E and D^y (and every D^x) from this pretrain model file "
                        "(models/pretrained.pt of the same settings)")
    p.add_argument("--out", default="reports/joint_probe.png")
    a = p.parse_args(argv)
    subs = list(read_subjects(f"{a.data}/subjects.csv").index)
    data = {s: read_subject(a.data, s) for s in subs}
    if a.crop < 1.0:
        for s, d in data.items():
            side = d.images.shape[-1]
            lo = int(round(side * (1 - a.crop) / 2))
            crop = np.ascontiguousarray(d.images[:, lo:side - lo, lo:side - lo])
            data[s] = replace(d, images=resize_frames(crop, side))
    x = {s: frames_to_tensor(resize_frames(data[s].images, a.size)) for s in subs}
    cfg = ArchConfig(size=a.size, width=a.width, latent=a.latent, mean_face=a.mean_face)
    model = DeepFNAutoencoder(cfg).to(memory_format=torch.channels_last)
    dx = nn.ModuleList([Decoder(cfg) for _ in subs]).to(memory_format=torch.channels_last)
    if a.pretrained:
        from deepfn.normalizer.checkpoint import load_model

        pre, _ = load_model(a.pretrained, kind="pretrained", arch=cfg, fix="check --pretrained")
        model.load_state_dict(pre.state_dict())
        for d in dx:
            d.load_state_dict(pre.decoder_template.state_dict())
    elif a.init == "glorot":  # the model is already Keras-initialised; so are its D^x copies
        glorot_init_(dx)
    elif a.init == "kaiming":  # normalize.init: kaiming
        kaiming_init_(model)
        kaiming_init_(dx)
    else:
        for m in [*model.modules(), *dx.modules()]:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
    if a.mean_face:
        model.decoder_template.set_mean_face(x[a.template])
        for s, d in zip(subs, dx, strict=True):
            d.set_mean_face(x[s])
    betas = (a.beta1, a.beta2)
    shared = Adam([*model.encoder.parameters(), *model.decoder_template.parameters()], a.lr,
                  betas)
    per = [Adam(d.parameters(), a.lr, betas) for d in dx]
    aug = AugmentParams(rotation=0.0, scale=0.0, translation=0.0) if a.no_affine \
        else AugmentParams()
    g = torch.Generator().manual_seed(0)
    others = [i for i, s in enumerate(subs) if s != a.template]
    t0 = time.perf_counter()
    for it in range(a.iterations):
        i, b = others[it % len(others)], a.batch
        pick = [x[a.template][torch.randint(len(x[a.template]), (b,), generator=g)],
                x[subs[i]][torch.randint(len(x[subs[i]]), (b,), generator=g)]]
        inp, tgt = augment(torch.cat(pick), aug, g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            h = model.encoder(inp.contiguous(memory_format=torch.channels_last))
            y_hat, x_hat = model.decoder_template(h[:b]), dx[i](h[b:])
        lx, ly = l1_loss(tgt[b:], x_hat), l1_loss(tgt[:b], y_hat)
        shared.zero_grad()
        per[i].zero_grad()
        (lx + ly).backward()
        shared.step()
        per[i].step()
        if (it + 1) % 500 == 0:
            print(f"it {it + 1}: loss_subject {float(lx):.4f} loss_template {float(ly):.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    probes, ex = ProbeSet(), []
    for k, s in enumerate(subs):
        d = data[s]
        after = resize_frames(reconstruct(model, resize_frames(d.images, a.size), "template"),
                              d.images.shape[-1])
        probes.add(k, d.images, after, d.intensity, d.sequence)
        if len(ex) < 10:
            j = pick_preview_frames(d.intensity, d.sequence, n=2)[1]
            ex.append((d.images[j], after[j]))
    r = summarize(probes, len(subs))
    print(json.dumps({"train_s": round(time.perf_counter() - t0, 1),
                      "identity_accuracy": r["identity_accuracy"],
                      "expression_r": [r["expression_r"]["mean_before"],
                                       r["expression_r"]["mean_after"]]}))
    save_png(a.out, grid_image([np.stack([b for b, _ in ex]), np.stack([f for _, f in ex])],
                               ["original", "joint DeepFN"], tile=64))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
