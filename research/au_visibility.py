"""Question: how visible is an AU at intensity 1 (trace) vs 2-5 at 64x64 after histogram
equalization, compared with the frame-to-frame nuisance of the same person at rest?

For each of a few BP4D-like subjects (their own identity and nuisance of the first frames):
render the neutral face and the same frame with one AU at intensity 1..5, equalize + resize to
64x64 as the pipeline does, and report the mean absolute gray-level change (0-255) caused by the
AU, divided by the mean absolute change between two consecutive neutral frames (pose, light,
blink and sensor noise): signal / nuisance.

    PYTHONPATH=. .venv/bin/python research/au_visibility.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from deepfn.data.corpus import AUS
from deepfn.data.preprocess import equalize_resize
from deepfn.data.synth.generate import plan_subject
from deepfn.data.synth.render import render_faces
from deepfn.data.synth.roster import roster_metadata

SUBJECTS = ["F001", "F002", "M001", "M002"]


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None).parse_args(
        argv)  # no options: --help only
    torch.set_num_threads(1)
    meta = roster_metadata(SUBJECTS, seed=0)
    levels = [1, 2, 3, 5]
    ratio = np.zeros((len(SUBJECTS), len(levels), len(AUS)))
    region = np.zeros_like(ratio)  # the same inside the AU's region (top 10 % pixels at level 5)
    for k, (_, row) in enumerate(meta.iterrows()):
        plan = plan_subject(row, seed=0, frames_per_sequence=30)
        ident = {n: torch.full((2,), v) for n, v in plan.identity.items()}
        nuis = {n: torch.from_numpy(v[:2]) for n, v in plan.nuisance.items()}
        rest = render_faces(ident, torch.zeros(2, len(AUS)), nuis, 128).numpy()
        base = equalize_resize(rest, [64])[0].astype(float)
        noise = np.abs(base[1] - base[0]).mean()
        diffs: list[np.ndarray] = []
        for li, lev in enumerate(levels):
            aus = torch.zeros(len(AUS), len(AUS))
            aus[torch.arange(len(AUS)), torch.arange(len(AUS))] = float(lev)
            idn = {n: torch.full((len(AUS),), v) for n, v in plan.identity.items()}
            nun = {n: torch.from_numpy(np.repeat(v[:1], len(AUS)))
                   for n, v in plan.nuisance.items()}
            img = render_faces(idn, aus, nun, 128).numpy()
            eq = equalize_resize(img, [64])[0].astype(float)
            diff = np.abs(eq - base[0])
            if li == len(levels) - 1:  # masks from the strongest level: the AU's region
                masks = diff > np.quantile(diff.reshape(len(AUS), -1), 0.9, axis=1)[:, None, None]
                rest = np.abs(base[1] - base[0])
                for j in range(len(AUS)):
                    region[k, :, j] = [d[j][masks[j]].mean() / rest[masks[j]].mean()
                                       for d in [*diffs, diff]]
            diffs.append(diff)
            ratio[k, li] = diff.mean((1, 2)) / noise
    print("signal/nuisance (mean |AU frame - neutral| / mean |neutral t+1 - neutral t|), "
          "mean over", SUBJECTS)
    print("level " + " ".join(f"{a:>5d}" for a in AUS))
    for li, lev in enumerate(levels):
        print(f"{lev:5d} " + " ".join(f"{v:5.2f}" for v in ratio[:, li].mean(0)))
    print("inside the AU's region (the 10 % of pixels that change most at level 5):")
    for li, lev in enumerate(levels):
        print(f"{lev:5d} " + " ".join(f"{v:5.2f}" for v in region[:, li].mean(0)))


if __name__ == "__main__":
    main()
