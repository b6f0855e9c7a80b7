"""Per-frame nuisance: head motion, light, camera and sensor, with BP4D/DISFA domain shifts."""

from __future__ import annotations

import numpy as np

from deepfn.data.synth.params import NUISANCE_PARAMS

__all__ = ["DOMAINS", "sample_nuisance"]

# dataset -> parameter -> (sequence mean, sequence sd, within-sequence wander amplitude).
# DISFA-like: camera off to the side and below (yaw/pitch offset), side light, brighter
# background, lower exposure, blurrier and noisier.
DOMAINS: dict[str, dict[str, tuple[float, float, float]]] = {
    "bp4d": {
        "roll": (0.0, 0.012, 0.01), "yaw": (0.0, 0.04, 0.04), "pitch": (0.0, 0.03, 0.03),
        "scale": (1.0, 0.01, 0.005), "tx": (0.0, 0.008, 0.005), "ty": (0.0, 0.008, 0.005),
        "light_x": (0.0, 0.08, 0.02), "light_y": (-0.3, 0.05, 0.02),
        "ambient": (0.5, 0.02, 0.0), "gain": (1.0, 0.03, 0.01),
        "gradient_x": (0.0, 0.02, 0.0), "gradient_y": (0.0, 0.02, 0.0),
        "background": (0.25, 0.02, 0.0), "blur": (0.35, 0.08, 0.03),
        "noise": (0.009, 0.002, 0.0), "gaze": (0.0, 0.3, 0.3),
    },
    "disfa": {
        "roll": (0.0, 0.012, 0.01), "yaw": (0.13, 0.04, 0.04), "pitch": (-0.1, 0.03, 0.03),
        "scale": (0.96, 0.01, 0.005), "tx": (0.01, 0.008, 0.005), "ty": (0.01, 0.008, 0.005),
        "light_x": (0.45, 0.08, 0.02), "light_y": (-0.45, 0.05, 0.02),
        "ambient": (0.42, 0.02, 0.0), "gain": (0.95, 0.03, 0.01),
        "gradient_x": (0.08, 0.02, 0.0), "gradient_y": (-0.05, 0.02, 0.0),
        "background": (0.55, 0.02, 0.0), "blur": (1.35, 0.1, 0.05),
        "noise": (0.016, 0.003, 0.0), "gaze": (0.3, 0.3, 0.3),
    },
}
_LIMITS = {"blur": (0.0, 2.0), "noise": (0.0, 0.05), "ambient": (0.1, 0.9),
           "background": (0.05, 0.95), "scale": (0.8, 1.2), "gaze": (-1.0, 1.0)}


def _wander(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean motion of unit-ish amplitude over task time ``t`` (three sinusoids):
    independent of the frame count, so more frames just sample the same motion more densely."""
    freq = rng.uniform(0.3, 2.5, 3)
    phase = rng.uniform(0, 2 * np.pi, 3)
    amp = rng.normal(0.0, 1.0, 3) / np.sqrt(3)
    motion: np.ndarray = (amp[None, :] * np.sin(2 * np.pi * freq[None, :] * t[:, None]
                                                + phase[None, :])).sum(1)
    return motion


def sample_nuisance(dataset: str, n_sequences: int, frames_per_sequence: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Nuisance parameters for ``n_sequences`` x ``frames_per_sequence`` frames (float32, (N,)).

    Each sequence draws its own pose/light/camera setting around the dataset's domain, then
    wanders smoothly; blinks are brief lid closures; ``seed`` picks each frame's sensor noise.
    """
    dom = DOMAINS[dataset]
    f = frames_per_sequence
    t = (np.arange(f) + 0.5) / f
    out: dict[str, list[np.ndarray]] = {k: [] for k in NUISANCE_PARAMS}
    for _ in range(n_sequences):
        for k, (mean, sd, wander) in dom.items():
            v = rng.normal(mean, sd) + wander * _wander(t, rng)
            lo, hi = _LIMITS.get(k, (-np.inf, np.inf))
            out[k].append(np.clip(v, lo, hi))
        blink = rng.random(f) < 0.04
        out["blink"].append(np.where(blink, rng.uniform(0.5, 1.0, f), 0.0))
        out["seed"].append(rng.integers(0, 2**24, f).astype(np.float64))  # exact in float32
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
