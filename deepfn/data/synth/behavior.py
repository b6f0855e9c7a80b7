"""AU time courses: emotion episodes (onset-apex-offset) per task, and the label coding."""

from __future__ import annotations

import numpy as np

from deepfn.data.corpus import AUS, DISFA_AUS
from deepfn.data.parts import frame_parts

__all__ = [
    "EMOTIONS", "TASKS", "DISFA_SEGMENTS", "BP4D_TASKS", "TASK_UNITS", "au_propensity",
    "sequence_intensities", "cover_parts", "subject_intensities", "code_labels",
]

_IX = {au: i for i, au in enumerate(AUS)}

# emotion -> AU -> (probability the AU joins an episode, intensity relative to the apex)
EMOTIONS: dict[str, dict[int, tuple[float, float]]] = {
    "happy": {6: (0.9, 0.9), 12: (1.0, 1.0), 10: (0.5, 0.6), 7: (0.4, 0.55), 14: (0.2, 0.5),
              17: (0.1, 0.4), 2: (0.1, 0.4)},
    "social_smile": {12: (1.0, 0.65), 14: (0.5, 0.6), 6: (0.3, 0.5), 24: (0.15, 0.4),
                     7: (0.2, 0.4)},
    "sad": {1: (0.8, 0.8), 4: (0.7, 0.7), 15: (0.85, 0.8), 17: (0.6, 0.7), 24: (0.2, 0.5)},
    "surprise": {1: (0.95, 0.9), 2: (0.9, 0.9), 4: (0.1, 0.3), 12: (0.15, 0.4)},
    "startle": {4: (0.6, 0.7), 7: (0.8, 0.8), 10: (0.5, 0.6), 12: (0.3, 0.5), 6: (0.4, 0.5),
                1: (0.4, 0.5), 2: (0.5, 0.5), 23: (0.2, 0.5)},
    "embarrassment": {12: (0.9, 0.8), 14: (0.7, 0.7), 24: (0.5, 0.7), 17: (0.3, 0.5),
                      6: (0.35, 0.5), 10: (0.2, 0.4), 15: (0.15, 0.4)},
    "fear": {1: (0.9, 0.8), 2: (0.8, 0.7), 4: (0.8, 0.7), 7: (0.4, 0.5), 23: (0.3, 0.5),
             10: (0.2, 0.4), 15: (0.2, 0.4)},
    "pain": {4: (0.9, 0.9), 6: (0.8, 0.8), 7: (0.95, 0.9), 10: (0.8, 0.8), 12: (0.35, 0.4),
             23: (0.35, 0.5)},
    "anger": {4: (1.0, 0.9), 7: (0.9, 0.8), 23: (0.75, 0.8), 24: (0.45, 0.7), 17: (0.4, 0.6),
              10: (0.3, 0.5)},
    "disgust": {10: (1.0, 0.9), 4: (0.7, 0.6), 17: (0.4, 0.5), 15: (0.45, 0.5), 6: (0.3, 0.4),
                7: (0.4, 0.5)},
    "concentration": {4: (0.7, 0.6), 7: (0.7, 0.6), 23: (0.5, 0.5), 24: (0.3, 0.5),
                      17: (0.3, 0.5)},
    "lip_press": {17: (0.9, 0.7), 24: (0.6, 0.8), 14: (0.3, 0.5), 23: (0.3, 0.5),
                  15: (0.2, 0.4)},
}

# BP4D's eight tasks and the emotions they elicit (mixture weights)
TASKS: dict[str, dict[str, float]] = {
    "T1": {"happy": 0.7, "social_smile": 0.15, "embarrassment": 0.05, "lip_press": 0.1},
    "T2": {"sad": 0.6, "lip_press": 0.2, "concentration": 0.1, "social_smile": 0.1},
    "T3": {"surprise": 0.4, "startle": 0.4, "happy": 0.2},                    # sudden sound
    "T4": {"embarrassment": 0.5, "happy": 0.3, "social_smile": 0.2},          # improvise song
    "T5": {"fear": 0.5, "surprise": 0.2, "concentration": 0.1, "happy": 0.1,  # threat
           "lip_press": 0.1},
    "T6": {"pain": 0.6, "concentration": 0.15, "happy": 0.1, "anger": 0.05,  # cold pressor
           "lip_press": 0.1},
    "T7": {"anger": 0.5, "concentration": 0.15, "happy": 0.15, "lip_press": 0.1,  # insult
           "disgust": 0.1},
    "T8": {"disgust": 0.6, "happy": 0.25, "lip_press": 0.1, "concentration": 0.05},  # odour
}
BP4D_TASKS: tuple[str, ...] = tuple(TASKS)
# DISFA: one stimulus video of eight clips
DISFA_SEGMENTS: tuple[dict[str, float], ...] = (
    {"happy": 0.7, "social_smile": 0.3}, {"happy": 0.8, "surprise": 0.2},
    {"surprise": 0.7, "fear": 0.3}, {"fear": 0.7, "surprise": 0.3},
    {"disgust": 0.8, "lip_press": 0.2}, {"sad": 0.8, "lip_press": 0.2},
    {"sad": 0.5, "surprise": 0.5}, {"happy": 0.6, "social_smile": 0.4},
)
# dataset -> (apex scale, mean gap between episodes in episode time units).  BP4D-like 3.6
# (was 3.0): 36 % of positive frames at trace level 1 instead of 45 %; person-dependent test F1
# 0.54 -> 0.60, person-independent unchanged (research/au_detectability.py, docs/synthetic.md).
_STYLE = {"bp4d": (3.6, 0.1), "disfa": (2.4, 0.4)}
# A task (a DISFA clip) lasts this many episode time units (~2-3 emotion episodes each).  2
# (more, shorter episodes per task at the same frame count) lowered the person-independent test
# F1 from 0.35 to 0.26 at 30 frames per task, 15 epochs (research/au_detectability.py).
TASK_UNITS = 1


def au_propensity(rng: np.random.Generator) -> np.ndarray:
    """How much a person uses each AU (12,), lognormal around 1."""
    return np.clip(np.exp(rng.normal(0.0, 0.3, len(AUS))), 0.4, 2.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    out: np.ndarray = x * x * (3 - 2 * x)
    return out


def sequence_intensities(t: np.ndarray, segments: list[dict[str, float]], *, expressivity: float,
                         propensity: np.ndarray, rng: np.random.Generator,
                         dataset: str = "bp4d") -> np.ndarray:
    """Continuous AU intensities (len(t), 12) in [0, 5] at times ``t`` (task units; segment k
    covers [k, k+1)): overlapping emotion episodes, max-combined, plus tonic activity."""
    scale, gap = _STYLE[dataset]
    out = np.zeros((len(t), len(AUS)))
    end = float(len(segments))
    start = -rng.uniform(0.0, 0.4)
    while start < end:
        mix = segments[min(max(int(np.floor(start)), 0), len(segments) - 1)]
        names = list(mix)
        emo = names[rng.choice(len(names), p=np.array([mix[k] for k in names]) / sum(mix.values()))]
        on, apex, off = rng.uniform(0.05, 0.15), rng.uniform(0.15, 0.45), rng.uniform(0.08, 0.2)
        peak = scale * expressivity ** 0.7 * np.exp(rng.normal(0.0, 0.25))
        for au, (prob, rel) in EMOTIONS[emo].items():
            i = _IX[au]
            u, jitter, lag = rng.random(), rng.uniform(0.75, 1.15), rng.uniform(-0.03, 0.03)
            if u >= min(1.0, prob * propensity[i] ** 0.5):
                continue
            s0 = start + lag
            prof = _smoothstep((t - s0) / on) * (1 - _smoothstep((t - s0 - on - apex) / off))
            out[:, i] = np.maximum(out[:, i], peak * rel * propensity[i] * jitter * prof)
        start += on + apex + 0.5 * off + rng.exponential(gap / expressivity)
    for au in (7, 10, 14, 17, 24):  # tonic low-level activity in some sequences
        u, level = rng.random(), rng.uniform(0.4, 1.6)
        if u < 0.12 * expressivity:
            out[:, _IX[au]] = np.maximum(out[:, _IX[au]], level)
    clipped: np.ndarray = np.clip(out, 0.0, 5.0)
    return clipped


def _episode_profile(t: np.ndarray, s0: float, on: float, apex: float, off: float) -> np.ndarray:
    out: np.ndarray = _smoothstep((t - s0) / on) * (1 - _smoothstep((t - s0 - on - apex) / off))
    return out


def cover_parts(inten: np.ndarray, t: np.ndarray, segment: np.ndarray,
                segments: list[dict[str, float]], parts: np.ndarray, *, expressivity: float,
                propensity: np.ndarray, rng: np.random.Generator, dataset: str = "bp4d",
                ) -> np.ndarray:
    """Add emotion episodes until every coded AU occurs in every protocol part.

    ``inten`` (N, 12) continuous intensities, ``t`` (N,) time in its segment's units, ``segment``
    (N,) the segment index into ``segments`` (mixture weights), ``parts`` (N,) the protocol part
    of each frame.  For each (part, AU) pair without an occurrence (level >= 1 for BP4D-like,
    >= 2 for DISFA-like, :func:`code_labels`): an emotion that recruits the AU is drawn (by its
    recruitment probability), a segment (by how much it elicits that emotion), and a frame of
    that part in it; an episode of the emotion is centred there, the AU forced on above the
    occurrence level, the emotion's other AUs joining as usual.  Like BP4D's coders choosing the
    most expressive stretch of each task, it makes every part scorable for every AU.
    """
    out = inten.copy()
    scale, _ = _STYLE[dataset]
    level = 1 if dataset == "bp4d" else 2
    coded = [i for i, au in enumerate(AUS) if dataset == "bp4d" or au in DISFA_AUS]
    for part in np.unique(parts).tolist():
        in_part = np.flatnonzero(parts == part)
        for i in coded:
            if (out[in_part, i] >= level - 0.5).any():
                continue
            emos = [e for e in EMOTIONS if AUS[i] in EMOTIONS[e]]
            w = np.array([EMOTIONS[e][AUS[i]][0] for e in emos])
            emo = emos[rng.choice(len(emos), p=w / w.sum())]
            seg_w = np.array([segments[int(k)].get(emo, 0.0) + 0.05 for k in segment[in_part]])
            f = in_part[rng.choice(len(in_part), p=seg_w / seg_w.sum())]
            on, apex, off = rng.uniform(0.05, 0.15), rng.uniform(0.15, 0.45), rng.uniform(0.08, 0.2)
            s0 = t[f] - on - apex * rng.uniform(0.2, 0.8)  # frame f lies on the apex
            # a BP4D task has its own clock: the episode stays in its task; a video has one
            rows = np.flatnonzero(segment == segment[f]) if dataset == "bp4d" else np.arange(len(t))
            peak = scale * expressivity ** 0.7 * np.exp(rng.normal(0.0, 0.25))
            for au, (prob, rel) in EMOTIONS[emo].items():
                j = _IX[au]
                u, jitter = rng.random(), rng.uniform(0.75, 1.15)
                amp = peak * rel * propensity[j] * jitter
                if j == i:
                    amp = max(amp, level + rng.uniform(0.0, 1.0))
                elif u >= min(1.0, prob * propensity[j] ** 0.5):
                    continue
                prof = _episode_profile(t[rows], s0, on, apex, off)
                out[rows, j] = np.maximum(out[rows, j], amp * prof)
    clipped: np.ndarray = np.clip(out, 0.0, 5.0)
    return clipped


def subject_intensities(dataset: str, frames_per_sequence: int, *, expressivity: float,
                        rng: np.random.Generator, cover: bool = True,
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intensity (N, 12) float, sequence (N,) str, frame (N,) int32) for one subject.

    ``cover``: every coded AU occurs in every protocol part (:func:`cover_parts`).
    """

    prop = au_propensity(rng)
    f, u = frames_per_sequence, TASK_UNITS
    if dataset == "disfa":
        t = (np.arange(8 * f) + 0.5) / f * u
        segs = list(DISFA_SEGMENTS)
        inten = sequence_intensities(t, [m for m in segs for _ in range(u)],
                                     expressivity=expressivity, propensity=prop, rng=rng,
                                     dataset="disfa")
        seq, frame = np.full(8 * f, "V1"), np.arange(8 * f, dtype=np.int32)
        segment = np.minimum(np.floor(t / u).astype(np.int64), len(segs) - 1)
    else:
        t1 = (np.arange(f) + 0.5) / f * u
        segs = [TASKS[k] for k in BP4D_TASKS]
        inten = np.concatenate([sequence_intensities(t1, [m] * u, expressivity=expressivity,
                                                     propensity=prop, rng=rng) for m in segs])
        seq = np.repeat(np.array(BP4D_TASKS), f)
        frame = np.tile(np.arange(f, dtype=np.int32), len(BP4D_TASKS))
        t, segment = np.tile(t1, len(segs)), np.repeat(np.arange(len(segs)), f)
    if cover:
        inten = cover_parts(inten, t, segment, segs, frame_parts(seq, frame),
                            expressivity=expressivity, propensity=prop, rng=rng, dataset=dataset)
    return inten, seq, frame


def code_labels(intensity: np.ndarray, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """FACS coding of continuous intensities -> (occurrence, intensity) int8 (N, 12).

    Intensity levels 0..5 (A..E = 1..5) are the rounded values.  BP4D: all AUs coded,
    occurrence = level >= 1.  DISFA: only ``DISFA_AUS`` coded, occurrence = level >= 2; the
    other columns are -1 in both arrays.
    """
    level = np.clip(np.floor(intensity + 0.5), 0, 5).astype(np.int8)
    if dataset == "bp4d":
        return (level >= 1).astype(np.int8), level
    coded = np.isin(np.array(AUS), DISFA_AUS)
    occ = np.where(coded, (level >= 2).astype(np.int8), np.int8(-1)).astype(np.int8)
    return occ, np.where(coded, level, np.int8(-1)).astype(np.int8)
