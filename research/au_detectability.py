"""Question: how well does a person-independent (and a person-dependent) LeNet-5 detect AUs on
the synthetic corpus, as a function of frames per task, epochs and the generator/protocol?

Synthesizes a reduced BP4D-like roster (cached under --work), preprocesses it to 64x64
(equalized, as the pipeline does) and trains LeNet-5s directly through the library
(deepfn.au.trainer.fit on deepfn.au.protocol's parts), one torch thread.  Test F1 is the mean over
test participants of the mean over the AUs that have positives in that participant's test part
(and, in brackets, the stage's convention: every AU counts, 0 without positives).

    PYTHONPATH=. .venv/bin/python research/au_detectability.py --frames 30 --epochs 15 --reps 2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from deepfn.au.metrics import au_metrics
from deepfn.au.protocol import TEST, TRAIN, VAL, cross_person_parts, draw_split, frame_parts
from deepfn.au.trainer import ClassifierTrainConfig, fit_classifier, part_tensors, predict
from deepfn.compute.device import Compute
from deepfn.config.settings import ExperimentsSettings, PreprocessSettings
from deepfn.data.corpus import AUS
from deepfn.data.preprocess import preprocess_corpus
from deepfn.data.synth import synthesize_corpus

ROSTERS = {
    # the reduced roster of the first measurements
    "12": [f"F{i:03d}" for i in range(1, 7)] + [f"M{i:03d}" for i in range(1, 7)],
    # the default roster's BP4D-like subjects without the template (M006): the `person` pool
    "19": [f"F{i:03d}" for i in range(1, 11)] + [f"M{i:03d}" for i in range(1, 11) if i != 6],
}


def corpus(work: Path, frames: int, seed: int, tag: str, roster: list[str]) -> str:
    raw, pre = work / f"raw_{tag}_f{frames}_s{seed}", work / f"pre_{tag}_f{frames}_s{seed}"
    if len(roster) != 12:
        n = f"_n{len(roster)}"
        raw, pre = raw.with_name(raw.name + n), pre.with_name(pre.name + n)
    if not (pre / "clf" / "manifest.json").exists():
        t0 = time.perf_counter()
        synthesize_corpus(raw, roster, seed=seed, frames_per_sequence=frames, progress=False)
        t1 = time.perf_counter()
        preprocess_corpus(raw, pre, PreprocessSettings(ae_size=32, clf_size=64), progress=False)
        print(f"corpus {tag} f{frames}: synth {t1 - t0:.1f} s, preprocess "
              f"{time.perf_counter() - t1:.1f} s ({len(roster)} subjects)", flush=True)
    return str(pre / "clf")


def relabel(cdir: str, min_level: int) -> str:
    """A copy of the corpus whose occurrence is intensity level >= ``min_level`` (same images)."""
    from deepfn.data.corpus import SubjectData, read_subject, write_subject

    out = Path(f"{cdir}_L{min_level}")
    if not out.exists():
        out.mkdir()
        for f in Path(cdir).glob("*.npz"):
            d = read_subject(cdir, f.stem)
            occ = np.where(d.intensity < 0, -1, d.intensity >= min_level).astype(np.int8)
            write_subject(out, SubjectData(d.subject, d.images, occ, d.intensity, d.sequence,
                                           d.frame))
    return str(out)


def test_blocks(cdir: str, subjects) -> np.ndarray:
    """Block (7 or 8, within its task) of each test frame, in part_tensors' order."""
    from deepfn.data.corpus import read_subject

    out = []
    for s in subjects:
        d = read_subject(cdir, s)
        parts = frame_parts(d.sequence, d.frame)
        f = int(d.frame.max()) + 1
        out.append(np.where(d.frame[parts == TEST] >= 7 * f // 8, 8, 7))
    return np.concatenate(out)


def per_participant_f1(cdir: str, subjects, model, bf16: bool, thr, block=None):
    x, y, p = part_tensors(cdir, subjects, TEST, AUS)
    probs = predict(model, x, Compute(torch.device("cpu"), "bf16" if bf16 else "fp32"))
    if block is not None:  # only the test frames of one block (7: next to val; 8: the last)
        keep = test_blocks(cdir, subjects) == block
        y, p, probs = y[keep], p[keep], probs[keep]
    pos_f1, all_f1, per_au = [], [], np.full((len(subjects), len(AUS)), np.nan)
    for k, s in enumerate(subjects):
        m = au_metrics(y[p == s], probs[p == s], thr)
        has = m.n_positive > 0
        pos_f1.append(m.f1[has].mean())
        all_f1.append(m.f1.mean())
        per_au[k, has] = m.f1[has]
    return float(np.mean(pos_f1)), float(np.mean(all_f1)), per_au


def fit_with_curve(cdir, train, val, tests, cfg, seed, block, parts=((TRAIN,), (VAL,))):
    """:func:`fit_classifier` on ``train``/``val`` with every epoch's model scored on ``tests``:
    ``(FitResult, curve)``, ``curve[e - 1]`` = the test F1 (over AUs with test positives) that
    a run of ``e`` epochs would report (its best validation epoch among the first ``e``; with
    a constant learning rate a shorter run is the same trajectory cut short)."""
    x, y, _ = part_tensors(cdir, train, parts[0], AUS)
    xv, yv, _ = part_tensors(cdir, val, parts[1], AUS)
    per_epoch, val_loss = [], []

    def score(epoch, model, thr):
        per_epoch.append(per_participant_f1(cdir, tests, model, True, thr, block)[0])
        pv = np.clip(predict(model, xv, Compute(torch.device("cpu"), "bf16")), 1e-6, 1 - 1e-6)
        coded = yv >= 0
        bce = -np.where(yv == 1, np.log(pv), np.log(1 - pv))
        val_loss.append(float(bce[coded].mean()))

    fr = fit_classifier(x, torch.from_numpy(y.astype(np.float32)), xv, yv, len(AUS), cfg,
                        seed=seed, on_epoch=score)
    vf = np.nan_to_num(np.array(fr.val_f1), nan=-1.0)
    curve = [per_epoch[int(np.argmax(vf[:e]))] for e in range(1, len(vf) + 1)]
    fit_with_curve.last = {"test_f1_by_epoch": per_epoch, "val_loss": val_loss,
                           "val_f1": fr.val_f1}
    return fr, curve, len(x)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dependent", action="store_true")
    ap.add_argument("--block", type=int, default=None, choices=(7, 8),
                    help="score only the test frames of block 7 (next to the validation block) "
                         "or 8 (two blocks from any train frame)")
    ap.add_argument("--tag", default="cur", help="label of the generator version (cache key)")
    ap.add_argument("--work", default="/tmp/au15")
    ap.add_argument("--balanced", action="store_true",
                    help="experiments.class_balance: BCE with pos_weight = negatives / positives "
                         "of the train frames (1..10)")
    ap.add_argument("--tune", action="store_true",
                    help="experiments.thresholds: validation (per-AU thresholds on validation)")
    ap.add_argument("--flip", action="store_true", help="mirror half the train frames")
    ap.add_argument("--wd", type=float, default=0.0, help="Adam weight decay")
    ap.add_argument("--roster", default="12", choices=sorted(ROSTERS))
    ap.add_argument("--n-train", type=int, default=4)
    ap.add_argument("--n-val", type=int, default=2)
    ap.add_argument("--dep-subjects", type=int, default=3,
                    help="person-dependent models on this many test subjects per repetition")
    ap.add_argument("--min-level", type=int, default=1,
                    help="recode occurrence as intensity level >= this (BP4D-like: 1)")
    ap.add_argument("--whole", action="store_true",
                    help="experiments.subject_frames: whole (the independent model reads every "
                         "frame of its train and validation subjects)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    roster = ROSTERS[args.roster]
    cdir = corpus(Path(args.work), args.frames, args.seed, args.tag, roster)
    if args.min_level != 1:
        cdir = relabel(cdir, args.min_level)
    exp = ExperimentsSettings(n_train=args.n_train, n_val=args.n_val, min_test=1, seed=args.seed)
    cfg = ClassifierTrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr,
                                class_balance=args.balanced, tune_thresholds=args.tune,
                                flip=args.flip, weight_decay=args.wd)
    cfg_dep = replace(cfg, epochs=args.epochs * exp.n_train)
    res = {"args": vars(args), "independent": [], "dependent": []}
    ind_au, dep_au = [], []
    for r in range(args.reps):
        split = draw_split({"others": roster}, "person", r, exp).groups["others"]
        t0 = time.perf_counter()
        fr, curve, n_x = fit_with_curve(cdir, split.train, split.val, split.test, cfg, r,
                                        args.block, cross_person_parts(
                                            "whole" if args.whole else "parts"))
        dt = time.perf_counter() - t0
        f1p, f1a, pau = per_participant_f1(cdir, split.test, fr.model, True, fr.thresholds,
                                            args.block)
        ind_au.append(pau)
        res["independent"].append({"rep": r, "f1_pos": f1p, "f1_all": f1a, "seconds": dt,
                                   "train_frames": n_x, "best_epoch": fr.best_epoch,
                                   "curve": curve, **fit_with_curve.last})
        print(f"rep {r} independent: test F1 {f1p:.3f} ({f1a:.3f}) best epoch "
              f"{fr.best_epoch}/{cfg.epochs}, {n_x} frames, {dt:.1f} s; by epochs "
              + " ".join(f"{v:.2f}" for v in curve), flush=True)
        if args.dependent:
            for s in split.test[:args.dep_subjects]:
                t0 = time.perf_counter()
                fr, curve, _ = fit_with_curve(cdir, (s,), (s,), (s,), cfg_dep, r, args.block)
                dt = time.perf_counter() - t0
                f1p, f1a, pau = per_participant_f1(cdir, (s,), fr.model, True, fr.thresholds,
                                                    args.block)
                dep_au.append(pau)
                res["dependent"].append({"rep": r, "subject": s, "f1_pos": f1p, "f1_all": f1a,
                                         "seconds": dt, "best_epoch": fr.best_epoch,
                                         "curve": curve[exp.n_train - 1::exp.n_train]})
                print(f"rep {r} dependent {s}: test F1 {f1p:.3f} ({f1a:.3f}) best epoch "
                      f"{fr.best_epoch}/{cfg_dep.epochs}, {dt:.1f} s", flush=True)
    for name, rows, au in (("independent", res["independent"], ind_au),
                           ("dependent", res["dependent"], dep_au)):
        if rows:
            per_au = np.nanmean(np.concatenate(au), 0)
            res[f"{name}_per_au"] = {f"AU{a:02d}": round(float(v), 3)
                                     for a, v in zip(AUS, per_au, strict=True)}
            print(f"{name}: mean test F1 {np.mean([r['f1_pos'] for r in rows]):.3f} "
                  f"(all-AU {np.mean([r['f1_all'] for r in rows]):.3f}); per AU "
                  + " ".join(f"{a}:{v:.2f}" for a, v in zip(AUS, per_au, strict=False)))
            curve = np.mean([r["curve"] for r in rows], 0)
            res[f"{name}_curve"] = [round(float(v), 4) for v in curve]
            print(f"{name}: mean test F1 of a run of 1..{len(curve)} epochs "
                  + " ".join(f"{v:.3f}" for v in curve))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
