"""Question: on the default corpus settings, does every AU have positives in every subject's
validation and test parts, and how are positive intensities distributed?

Labels only (plan_subject draws the AU time courses; nothing is rendered), so it runs in ~1 s.
    .venv/bin/python research/au_label_coverage.py [--frames 30] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from deepfn.au.protocol import TEST, TRAIN, VAL, frame_parts
from deepfn.data.corpus import AUS
from deepfn.data.synth.behavior import code_labels
from deepfn.data.synth.generate import plan_subject
from deepfn.data.synth.roster import roster_metadata

DEFAULT_BP4D = [f"F{i:03d}" for i in range(1, 11)] + [f"M{i:03d}" for i in range(1, 11)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    meta = roster_metadata(DEFAULT_BP4D, seed=args.seed)
    missing = {VAL: np.zeros(len(AUS), int), TEST: np.zeros(len(AUS), int)}
    rate = {p: [] for p in (TRAIN, VAL, TEST)}
    levels = np.zeros(6, int)
    for _, row in meta.iterrows():
        plan = plan_subject(row, seed=args.seed, frames_per_sequence=args.frames)
        occ, lev = code_labels(plan.intensity, plan.dataset)
        parts = frame_parts(plan.sequence, plan.frame)
        for p in (TRAIN, VAL, TEST):
            rate[p].append(occ[parts == p].mean(0))
        for p in (VAL, TEST):
            missing[p] += (occ[parts == p] == 1).sum(0) == 0
        levels += np.bincount(lev.ravel(), minlength=6)
    print(f"{len(meta)} BP4D-like subjects, {args.frames} frames/sequence, seed {args.seed}")
    print("AU      " + " ".join(f"{a:>5d}" for a in AUS))
    for p, name in ((TRAIN, "train"), (VAL, "val"), (TEST, "test")):
        print(f"rate {name:5s}" + " ".join(f"{v:5.2f}" for v in np.mean(rate[p], 0)))
    for p, name in ((VAL, "val"), (TEST, "test")):
        print(f"no pos {name:4s}" + " ".join(f"{v:5d}" for v in missing[p]),
              f"  (subjects without positives; total {missing[p].sum()})")
    pos = levels[1:]
    print("positive levels 1..5:", pos.tolist(),
          " fraction level 1: %.2f" % (pos[0] / pos.sum()))


if __name__ == "__main__":
    main()
