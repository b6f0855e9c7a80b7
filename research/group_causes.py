"""Question: how large is each physical cause of the group effects, per AU?

The synthetic corpus gives the groups physical reasons to differ (docs/synthetic.md, "Group
effects: causes"): the DISFA-like domain's camera angle, light and optics; darker skin's lower
feature contrast; facial hair around the mouth; group-correlated resting idiosyncrasies.  Each
cause is switched on and off on the same people and measured where the classifier looks: at
64x64 after histogram equalization (the pipeline's ``equalize_resize``).

Visibility causes (domain, skin, facial hair): for BP4D-like subjects (their own identity and the
nuisance of their first two frames), render the neutral face, the next neutral frame and each
AU alone at ``--level``; in the AU's region (the 10 % of pixels its change moves most, with the
cause off or on): signal = mean |AU frame - neutral|, nuisance = mean |neutral t+1 - neutral t|
(pose, light, blink, sensor) and sensor noise = mean |neutral - the same frame with other
noise|.  Reported per AU (median over subjects): the signal kept with the
cause on (on / off; before and after equalization), the visibility signal / nuisance with the
cause off and on, and the visibility kept (on / off).  Only the cause's parameters
change: ``disfa_pose`` swaps in the DISFA-like domain's head pose (yaw/pitch/roll/scale/shift),
``disfa_light`` its light, exposure and background, ``disfa_optics`` its blur and sensor noise,
``disfa_all`` everything; ``darker_skin`` sets albedo and feature contrast of Fitzpatrick V-VI
instead of I-II; ``beard`` gives men a full beard instead of none.

Resting idiosyncrasies: for every subject of a BP4D + DISFA roster, the neutral face with and
without its ``rest_*`` parameters (frontal, even light, no noise); their difference is projected
onto each AU's own signal (the AU at level 3 minus neutral), giving the intensity level the
resting face *looks like*.  Reported: the group means (female/male, bp4d/disfa,
lighter/darker) and their differences.

    PYTHONPATH=. .venv/bin/python research/group_causes.py [--level 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from deepfn.data.corpus import AUS, skin_group
from deepfn.data.preprocess import equalize_resize
from deepfn.data.synth.generate import plan_subject
from deepfn.data.synth.identity import ALBEDO, CONTRAST
from deepfn.data.synth.nuisance import sample_nuisance
from deepfn.data.synth.params import NEUTRAL_NUISANCE, REFERENCE_IDENTITY
from deepfn.data.synth.render import render_faces
from deepfn.data.synth.roster import roster_metadata, subject_rng

VISIBILITY_SUBJECTS = [f"F{i:03d}" for i in range(1, 7)] + [f"M{i:03d}" for i in range(1, 7)]
REST_SUBJECTS = ([f"F{i:03d}" for i in range(1, 11)] + [f"M{i:03d}" for i in range(1, 11)]
                 + [f"SN{i:03d}" for i in range(1, 21)])
POSE = ("yaw", "pitch", "roll", "scale", "tx", "ty")
LIGHT = ("light_x", "light_y", "ambient", "gain", "gradient_x", "gradient_y", "background")
OPTICS = ("blur", "noise")
REST = ("rest_brow", "rest_corner", "rest_fold", "rest_aperture", "rest_forehead",
        "rest_furrow")
MOUTH = (10, 12, 14, 15, 17, 23, 24)
SIZE = 128


def _render(identity: dict[str, float], nuisance: list[dict[str, float]],
            aus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw frames at 64x64 without equalization, frames equalized as the pipeline does)."""
    n = len(aus)
    ident = {k: torch.full((n,), float(v)) for k, v in identity.items()}
    nuis = {k: torch.tensor([float(d[k]) for d in nuisance]) for k in nuisance[0]}
    img = render_faces(ident, torch.as_tensor(aus, dtype=torch.float32), nuis, SIZE).numpy()
    raw = equalize_resize(img, [64], equalize=False)[0].astype(np.float64)
    return raw, equalize_resize(img, [64])[0].astype(np.float64)


def visibility(identity: dict[str, float], n0: dict[str, float], n1: dict[str, float],
               level: float) -> dict[str, np.ndarray]:
    """Per-pixel maps at 64x64: |AU frame - neutral| per AU at ``level`` (equalized ``eq``,
    raw ``raw``; (12, 64, 64)), |neutral t+1 - neutral t| (``frame``) and |neutral - the same
    neutral with other sensor noise| (``sensor``)."""
    k = len(AUS)
    aus = np.zeros((k + 3, k))
    aus[np.arange(k) + 3, np.arange(k)] = level
    other = {**n0, "seed": n0["seed"] + 7919.0}
    raw, eq = _render(identity, [n0, n1, other] + [n0] * k, aus)
    return {"eq": np.abs(eq[3:] - eq[0]), "raw": np.abs(raw[3:] - raw[0]),
            "frame": np.abs(eq[1] - eq[0]), "sensor": np.abs(eq[2] - eq[0])}


def compare(off: dict[str, np.ndarray], on: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per AU, inside its region (the 10 % of pixels that change most, off or on): signal kept
    (on / off, equalized and raw) and visibility signal / nuisance off and on."""
    out: dict[str, list[float]] = {}
    for j in range(len(AUS)):
        mask = np.zeros(off["eq"][j].shape, dtype=bool)
        for v in (off, on):
            mask |= v["eq"][j] > np.quantile(v["eq"][j], 0.9)
        r = {"kept": on["eq"][j][mask].mean() / off["eq"][j][mask].mean(),
             "kept_raw": on["raw"][j][mask].mean() / off["raw"][j][mask].mean()}
        for what in ("frame", "sensor"):
            for when, v in (("off", off), ("on", on)):
                r[f"{what}_{when}"] = v["eq"][j][mask].mean() / v[what][mask].mean()
            r[f"{what}_kept"] = r[f"{what}_on"] / r[f"{what}_off"]
        for key, val in r.items():
            out.setdefault(key, []).append(float(val))
    return {k: np.array(v) for k, v in out.items()}


def _frame(nuis: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {k: float(v[i]) for k, v in nuis.items()}


def _skin(identity: dict[str, float], types: tuple[int, int]) -> dict[str, float]:
    """The person with the mean albedo and feature contrast of the skin ``types``."""
    return {**identity, "albedo": float(np.mean([ALBEDO[t] for t in types])),
            "contrast": float(np.mean([CONTRAST[t] for t in types]))}


def visibility_causes(level: float, seed: int = 0) -> dict[str, dict[str, object]]:
    """Per cause, per AU (medians over subjects): the signal kept with the cause on (on / off;
    equalized and raw) and the visibility signal / nuisance (frame to frame, sensor) on and
    off."""
    meta = roster_metadata(VISIBILITY_SUBJECTS, seed=seed)
    rows: dict[str, list[dict[str, np.ndarray]]] = {}
    for sid, row in meta.iterrows():
        plan = plan_subject(row, seed=seed, frames_per_sequence=30)
        ident, bp4d = plan.identity, plan.nuisance
        disfa = sample_nuisance("disfa", 1, 30, subject_rng(seed, str(sid), "nuisance"))
        off = [_frame(bp4d, 0), _frame(bp4d, 1)]

        def swap(keys: tuple[str, ...], off: list[dict[str, float]] = off,
                 disfa: dict[str, np.ndarray] = disfa) -> list[dict[str, float]]:
            return [{**o, **{k: float(disfa[k][i]) for k in keys}} for i, o in enumerate(off)]

        cases: dict[str, tuple[dict[str, float], list[dict[str, float]],
                               dict[str, float], list[dict[str, float]]]] = {
            "disfa_pose": (ident, off, ident, swap(POSE)),
            "disfa_light": (ident, off, ident, swap(LIGHT)),
            "disfa_optics": (ident, off, ident, swap(OPTICS)),
            "disfa_all": (ident, off, ident, [_frame(disfa, 0), _frame(disfa, 1)]),
            "darker_skin": (_skin(ident, (1, 2)), off, _skin(ident, (5, 6)), off),
        }
        if row["gender"] == "M":
            cases["beard"] = ({**ident, "beard": 0.0}, off, {**ident, "beard": 1.0}, off)
        cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for name, (id_off, nu_off, id_on, nu_on) in cases.items():
            key = id(id_off), id(nu_off)  # the "off" render is shared by the domain causes
            if key not in cache:
                cache[key] = visibility(id_off, nu_off[0], nu_off[1], level)
            on = visibility(id_on, nu_on[0], nu_on[1], level)
            rows.setdefault(name, []).append(compare(cache[key], on))
    out: dict[str, dict[str, object]] = {}
    for name, vals in rows.items():
        out[name] = {m: np.median(np.stack([v[m] for v in vals]), 0).round(3).tolist()
                     for m in vals[0]}
        out[name]["n_subjects"] = len(vals)
    return out


def resting_idiosyncrasies(seed: int = 0) -> dict[str, object]:
    """Apparent AU level of each resting face, group means and group differences."""
    meta = roster_metadata(REST_SUBJECTS, seed=seed)
    k = len(AUS)
    neutral = {**NEUTRAL_NUISANCE, "noise": 0.0}
    apparent = {}
    for sid, row in meta.iterrows():
        ident = plan_subject(row, seed=seed, frames_per_sequence=6).identity
        plain = {**ident, **{p: REFERENCE_IDENTITY[p] for p in REST}}
        aus = np.zeros((k + 1, k))
        aus[np.arange(k) + 1, np.arange(k)] = 3.0
        eq = _render(plain, [neutral] * (k + 1), aus)[1]
        rest = _render(ident, [neutral], np.zeros((1, k)))[1][0]
        d = (rest - eq[0]).ravel()
        sig = (eq[1:] - eq[0]).reshape(k, -1)
        apparent[str(sid)] = (3.0 * sig @ d / (sig * sig).sum(1)).round(3)
    groups = {
        "female": meta["gender"] == "F", "male": meta["gender"] == "M",
        "bp4d": meta["dataset"] == "bp4d", "disfa": meta["dataset"] == "disfa",
        "lighter": meta["skin_type"].map(lambda t: skin_group(int(t)) == "lighter"),
        "darker": meta["skin_type"].map(lambda t: skin_group(int(t)) == "darker"),
    }
    means = {g: np.mean([apparent[s] for s in meta.index[m]], 0).round(3).tolist()
             for g, m in groups.items()}
    spread = np.std(np.stack(list(apparent.values())), 0).round(3).tolist()
    diffs = {f"{a}-{b}": (np.array(means[a]) - np.array(means[b])).round(3).tolist()
             for a, b in (("female", "male"), ("bp4d", "disfa"), ("lighter", "darker"))}
    return {"group_means": means, "group_differences": diffs, "sd_over_subjects": spread,
            "n_subjects": {g: int(m.sum()) for g, m in groups.items()}}


def _print_table(title: str, rows: dict[str, list[float]], fmt: str = "{:5.2f}") -> None:
    print(title)
    print(f"{'':>14} " + " ".join(f"AU{a:02d}" for a in AUS))
    for name, vals in rows.items():
        print(f"{name:>14} " + " ".join(fmt.format(v) for v in vals))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--level", type=float, default=3.0, help="AU intensity (0..5) rendered")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    vis = visibility_causes(args.level, args.seed)
    for metric, title in (
            ("kept_raw", "signal kept with the cause on (on / off), 64x64 before equalization"),
            ("kept", "the same after equalization"),
            ("frame_off", "visibility with the cause off: signal / frame-to-frame nuisance"),
            ("frame_kept", "visibility kept with the cause on (on / off), frame-to-frame"),
            ("sensor_off", "visibility with the cause off: signal / sensor noise"),
            ("sensor_kept", "visibility kept with the cause on (on / off), sensor noise")):
        _print_table(f"{title}; AU level {args.level:g}, median over subjects",
                     {k: v[metric] for k, v in vis.items()})  # type: ignore[misc]
    rest = resting_idiosyncrasies(args.seed)
    _print_table("resting face: apparent AU level, group means",
                 rest["group_means"], "{:+5.2f}")  # type: ignore[arg-type]
    _print_table("group differences", rest["group_differences"],  # type: ignore[arg-type]
                 "{:+5.2f}")
    _print_table("sd over subjects", {"all": rest["sd_over_subjects"]})  # type: ignore[dict-item]
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"level": args.level, "seed": args.seed, "aus": AUS,
                                         "visibility": vis, "resting": rest}, indent=1))
        print(f"-> {args.json}")


if __name__ == "__main__":
    main()
