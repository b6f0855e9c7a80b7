"""Probe: which per-subject normalizer recipe carries expression at the default CPU budget?

    nice -n 19 .venv/bin/python research/probe_normalizer_recipe.py --data data/preprocessed/ae \\
        --template M006 [--subjects F001 F004 M003 M008 SN002 SN007] [--pre-its 800] [--its 150] \\
        [--lr 5e-4] [--rotation 10 --scale 0.05 --translation 0.05 --warp 0.03] [--tag NAME]

Pretrains E and D^y on the template alone (cached per pretrain settings in ``--cache``), reports
whether D^y(E(y)) keeps the TEMPLATE's own expressions (per-AU ridge r on held-out sequences of
the template, originals vs reconstructions), then fine-tunes each listed subject from it (Eq. 1,
warm start, fresh optimizer) and reports the transfer diagnostics of
``deepfn.normalizer.diagnostics`` over those subjects: identity probe and expression r, before
(the frames) vs after (D^y(E(x))), and the same for the subject's own reconstruction
D^x(E(x)).  Prints one JSON line and writes a preview PNG (per subject: input | D^x(E(x)) |
D^y(E(x)) rows) to ``--out``/<tag>.png and appends the JSON to ``--out``/results.jsonl.  It is
a probe, not a pipeline stage; results and the recommended recipe are in docs/normalizer.md
("Recipe probe", "Centred input").  The recipe it led to::

    --mean-face --init kaiming --beta1 0.9 --beta2 0.99 --lr 1e-3 \
        --rotation 0 --scale 0 --translation 0 --pre-its 5000 --its 150

and what the CPU profiles now do for D^y(E(x)) (``finetune: decoder_subject`` leaves E and D^y
as pretrained, which is ``--its 0`` here)::

    ... the same ... --center-input --pre-its 10000 --its 0

Timings: ``s_per_subject`` is wall time of the fine-tune, ``cpu_s_per_subject`` its process CPU
time (on a shared machine where other jobs pause this one, compare CPU time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from deepfn.data.corpus import read_subject, read_subjects
from deepfn.normalizer.augment import AugmentParams
from deepfn.normalizer.diagnostics import (
    ProbeSet,
    downsample,
    expression_probe,
    split_mask,
    summarize,
)
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder, kaiming_init_
from deepfn.normalizer.preview import grid_image, pick_preview_frames, reconstruct, save_png
from deepfn.normalizer.train import NormalizerTrainConfig, fit_normalizer, frames_to_tensor

DEFAULT_SUBJECTS = ["F001", "F004", "M003", "M008", "SN002", "SN007"]


def _mean_r(d: dict[str, float]) -> float | None:
    return float(np.mean(list(d.values()))) if d else None


def _within(frames_before: np.ndarray, frames_after: np.ndarray, intensity: np.ndarray,
            sequence: np.ndarray) -> tuple[float | None, float | None]:
    train = split_mask(sequence)
    b = expression_probe(downsample(frames_before), intensity, train)
    a = expression_probe(downsample(frames_after), intensity, train)
    return _mean_r(b), _mean_r(a)


@torch.inference_mode()
def latent(model: DeepFNAutoencoder, frames: np.ndarray, source: str = "subject") -> np.ndarray:
    """(N, latent) bottleneck codes of E (fp32): does the encoder see the expression at all?"""
    model.eval()
    x = frames_to_tensor(frames)
    center = model.decoder(source).center
    if center is not None:
        x = x - center
    return model.encoder.dense_latent(model.encoder.convs(x).flatten(1)).numpy()


def _within_latent(model, frames, intensity, sequence, source="subject") -> float | None:
    return _mean_r(expression_probe(latent(model, frames, source), intensity,
                                    split_mask(sequence)))


def orig_probe_r(frames_before: np.ndarray, frames_after: np.ndarray, intensity: np.ndarray,
                 sequence: np.ndarray) -> float | None:
    """Mean per-AU r of a ridge trained on the ORIGINAL frames (train split) and applied to the
    reconstructions of the held-out split: does the output carry the original's expression
    signal (a steadier single-subject number than re-fitting on the outputs)?"""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deepfn.data.corpus import AUS
    train = split_mask(sequence)
    xb, xa = downsample(frames_before), downsample(frames_after)
    out = []
    for j, _ in enumerate(AUS):
        coded = intensity[:, j] >= 0
        tr, te = coded & train, coded & ~train
        yv = intensity[:, j].astype(np.float64)
        if tr.sum() < 10 or te.sum() < 10 or yv[tr].std() == 0 or yv[te].std() == 0:
            continue
        reg = make_pipeline(StandardScaler(), Ridge(alpha=10.0)).fit(xb[tr], yv[tr])
        pred = reg.predict(xa[te])
        out.append(float(np.corrcoef(pred, yv[te])[0, 1]) if pred.std() > 0 else 0.0)
    return float(np.mean(out)) if out else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/preprocessed/ae")
    p.add_argument("--template", default="M006")
    p.add_argument("--subjects", nargs="*", default=DEFAULT_SUBJECTS)
    p.add_argument("--pre-its", type=int, default=800)
    p.add_argument("--pre-lr", type=float, default=None, help="default: --lr")
    p.add_argument("--its", type=int, default=150)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ft-batch", type=int, default=None, help="fine-tune batch (default --batch)")
    p.add_argument("--ft-lr", type=float, default=None, help="fine-tune lr (default --lr)")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--latent", type=int, default=256)
    p.add_argument("--rotation", type=float, default=10.0)
    p.add_argument("--scale", type=float, default=0.05)
    p.add_argument("--translation", type=float, default=0.05)
    p.add_argument("--warp", type=float, default=0.03)
    p.add_argument("--warp-grid", type=int, default=5)
    p.add_argument("--mean-face", action="store_true",
                   help="decoders output sigmoid(net + learned per-pixel bias), the bias "
                        "initialised to logit(mean image) of the decoder's person")
    p.add_argument("--center-input", action="store_true",
                   help="E sees each frame minus its person's mean frame")
    p.add_argument("--init", choices=["glorot", "kaiming"], default="glorot",
                   help="glorot = glorot_init_ (deepfn's); kaiming = He-uniform for LeakyReLU(0.1)")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="research/results/scratch_recipe/pretrain_cache")
    p.add_argument("--tag", default="probe")
    p.add_argument("--out", default="research/results/scratch_recipe")
    p.add_argument("--skip-finetune", action="store_true")
    p.add_argument("--ft-freeze", choices=["none", "dx", "dy"], default="none",
                   help="fine-tune: freeze D^x's layers (its mean face stays trainable) or D^y")
    p.add_argument("--pretrain-all", action="store_true",
                   help="warm start on all subjects (shared D^x, per-subject mean faces); "
                        "needs --mean-face")
    a = p.parse_args(argv)
    pre_lr = a.lr if a.pre_lr is None else a.pre_lr

    t_all = time.perf_counter()
    tmpl = read_subject(a.data, a.template)
    y = frames_to_tensor(tmpl.images)
    arch = ArchConfig(size=y.shape[-1], width=a.width, latent=a.latent, mean_face=a.mean_face,
                      center_input=a.center_input)
    if a.center_input and a.pretrain_all:
        raise SystemExit("--center-input does not go with --pretrain-all")
    aug = AugmentParams(rotation=a.rotation, scale=a.scale, translation=a.translation,
                        warp_grid=a.warp_grid, warp_strength=a.warp)
    extra: dict[str, object] = {"mean_face": a.mean_face}
    if a.init != "glorot":
        extra["init"] = a.init
    if a.pretrain_all:
        extra["pretrain_all"] = True

    def cfg(its: int, lr: float, batch: int | None = None) -> NormalizerTrainConfig:
        return NormalizerTrainConfig(iterations=its, batch_size=batch or a.batch, lr=lr,
                                     betas=(a.beta1, a.beta2), precision=a.precision,
                                     augment=aug, checkpoint_every=10**9, log_every=max(its, 1))

    def new_model() -> DeepFNAutoencoder:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(a.seed)
            m = DeepFNAutoencoder(arch)
            if a.init == "kaiming":
                kaiming_init_(m)
        if a.mean_face or a.center_input:
            m.set_mean_face("template", y)
        return m

    key = hashlib.sha256(json.dumps([arch.to_dict(), vars(aug), extra, a.pre_its, pre_lr,
                                     a.beta1, a.beta2, a.batch, a.precision, a.seed,
                                     a.template], sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(a.cache) / f"{key}.pt"
    model = new_model()
    t0 = time.perf_counter()
    if cache.exists():
        sd = torch.load(cache, weights_only=True)
        sd.pop("all", None)
        model.load_state_dict(sd)
        pre_s = None
    else:
        c0 = time.process_time()
        if a.pretrain_all:
            subs = [s for s in read_subjects(f"{a.data}/subjects.csv").index if s != a.template]
            curve = pretrain_all(model, y, [frames_to_tensor(read_subject(a.data, s).images)
                                            for s in subs], cfg(a.pre_its, pre_lr),
                                 torch.Generator().manual_seed(a.seed))
        else:
            st = fit_normalizer(model, y, None, cfg(a.pre_its, pre_lr),
                                torch.Generator().manual_seed(a.seed))
            curve = st.loss_template
        pre_s = round(time.perf_counter() - t0, 1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        if a.pretrain_all:  # D^x is the shared one: keep it (its face is re-set per subject)
            torch.save({"all": True, **model.state_dict()}, cache)
        else:
            torch.save(model.state_dict(), cache)
        step = max(50, a.pre_its // 16)
        points = [round(float(np.mean(curve[i:i + 50])), 4) for i in range(0, a.pre_its, step)]
        print(f"pretrain {a.pre_its} its: {pre_s} s (cpu {time.process_time() - c0:.1f} s), "
              f"last-50 loss {np.mean(curve[-50:]):.4f}; curve {points}", flush=True)
    if not a.pretrain_all:
        model.copy_template_decoder_to_subject()
    pre_state = {k: v.clone() for k, v in model.state_dict().items()}
    rec_y = reconstruct(model, tmpl.images, "template", source="template")
    t_b, t_a = _within(tmpl.images, rec_y, tmpl.intensity, tmpl.sequence)
    tmpl_l1 = float(np.abs(rec_y.astype(np.float32) - tmpl.images).mean() / 255)
    result = {"tag": a.tag, "pretrain_s": pre_s, "template_recon_l1": round(tmpl_l1, 4),
              "template_expr_r": [t_b, t_a],
              "template_origprobe_r": orig_probe_r(tmpl.images, rec_y, tmpl.intensity,
                                                   tmpl.sequence),
              "template_latent_r": _within_latent(model, tmpl.images, tmpl.intensity,
                                                  tmpl.sequence, "template")}
    print(json.dumps(result), flush=True)
    rows, labels = [], []
    j = pick_preview_frames(tmpl.intensity, tmpl.sequence, n=6)
    rows += [tmpl.images[j], rec_y[j]]
    labels += [f"{a.template} y", "D^y(E(y))"]
    if a.skip_finetune:
        save_png(Path(a.out) / f"{a.tag}.png", grid_image(rows, labels, tile=64))
        return 0

    probes, probes_x = ProbeSet(), ProbeSet()
    secs, cpu, per_subject, lx_final = [], [], {}, []
    for k, s in enumerate(a.subjects):
        d = read_subject(a.data, s)
        model.load_state_dict(pre_state)
        if a.mean_face or a.center_input:
            model.set_mean_face("subject", frames_to_tensor(d.images))
        g = torch.Generator().manual_seed(a.seed * 1000 + k + 1)
        for name, prm in model.named_parameters():
            prm.requires_grad_(not (
                (a.ft_freeze == "dx" and name.startswith("decoder_subject.")
                 and not name.endswith(".face"))
                or (a.ft_freeze == "dy" and name.startswith("decoder_template."))))
        t0, c0 = time.perf_counter(), time.process_time()
        st = fit_normalizer(model, y, frames_to_tensor(d.images),
                            cfg(a.its, a.ft_lr or a.lr, a.ft_batch), g)
        secs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        lx_final.append(float(np.mean(st.loss_subject[-20:])))
        after = reconstruct(model, d.images, "template")
        own = reconstruct(model, d.images, "subject")
        probes.add(k, d.images, after, d.intensity, d.sequence)
        probes_x.add(k, d.images, own, d.intensity, d.sequence)
        per_subject[s] = {"own_r": _within(d.images, own, d.intensity, d.sequence),
                          "latent_r": _within_latent(model, d.images, d.intensity, d.sequence),
                          "to_template_r": _within(d.images, after, d.intensity, d.sequence)[1]}
        j = pick_preview_frames(d.intensity, d.sequence, n=6)
        rows += [d.images[j], own[j], after[j]]
        labels += [s, "D^x(E(x))", "D^y(E(x))"]
    r, rx = summarize(probes, len(a.subjects)), summarize(probes_x, len(a.subjects))
    result.update({
        "iterations": a.its, "s_per_subject": round(float(np.mean(secs)), 2),
        "ms_per_step": round(1000 * float(np.mean(secs)) / max(a.its, 1), 1),
        "cpu_s_per_subject": round(float(np.mean(cpu)), 2),
        "loss_subject_last20": round(float(np.mean(lx_final)), 4),
        "identity": [r["identity_accuracy"]["before"], r["identity_accuracy"]["after"]],
        "identity_own": rx["identity_accuracy"]["after"],
        "expr_r": [r["expression_r"]["mean_before"], r["expression_r"]["mean_after"]],
        "expr_r_own": rx["expression_r"]["mean_after"],
        "expr_r_cross": [r["expression_r_cross_subject"]["mean_before"],
                         r["expression_r_cross_subject"]["mean_after"]],
        "per_subject": per_subject, "total_s": round(time.perf_counter() - t_all, 1),
        "args": {k: v for k, v in vars(a).items() if k not in ("data", "out", "cache")},
    })
    print(json.dumps(result), flush=True)
    save_png(Path(a.out) / f"{a.tag}.png", grid_image(rows, labels, tile=64))
    with open(Path(a.out) / "results.jsonl", "a") as f:
        f.write(json.dumps(result) + "\n")
    return 0


def _logit_mean(frames: Tensor, eps: float = 1.0 / 255) -> Tensor:
    m = frames.float().mean(0, keepdim=True).clamp(eps, 1 - eps)
    return torch.log(m) - torch.log1p(-m)


def pretrain_all(model: DeepFNAutoencoder, y: Tensor, others: list[Tensor],
                 cfg: NormalizerTrainConfig, generator: torch.Generator) -> list[float]:
    """Warm start on every subject: E + D^y on the template (Eq. 1's 2nd term) and E + ONE
    shared D^x on a batch mixed from all other subjects, each frame's D^x output biased by its
    own subject's mean face (``--mean-face``) instead of D^x's learned ``face``.  Returns the
    per-iteration total losses."""
    from deepfn.normalizer.augment import augment
    from deepfn.normalizer.train import Adam, l1_loss

    model.to(memory_format=torch.channels_last)
    opt = Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    faces = torch.cat([_logit_mean(o) for o in others])                 # (n, 1, S, S)
    sizes = torch.tensor([len(o) for o in others])
    flat = torch.cat(others)
    starts = torch.cumsum(sizes, 0) - sizes
    b, losses = cfg.batch_size, []
    dx = model.decoder_subject
    model.train()
    for _ in range(cfg.iterations):
        iy = torch.randint(len(y), (b,), generator=generator)
        who = torch.randint(len(others), (b,), generator=generator)
        ix = starts[who] + (torch.rand(b, generator=generator) * sizes[who]).long()
        inputs, targets = augment(torch.cat([y[iy], flat[ix]]), cfg.augment, generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            h = model.encoder(inputs.contiguous(memory_format=torch.channels_last))
            y_hat = model.decoder_template(h[:b])
            zx = dx.out(dx.upscales(h[b:]))
        x_hat = torch.sigmoid(zx.float() + faces[who])
        loss = l1_loss(targets[:b], y_hat) + l1_loss(targets[b:], x_hat)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


if __name__ == "__main__":
    raise SystemExit(main())
