"""Draws one person's identity (geometry, texture, accessories, resting idiosyncrasies)."""

from __future__ import annotations

import numpy as np

from deepfn.data.synth.params import IDENTITY_PARAMS, REFERENCE_IDENTITY
from deepfn.errors import DeepFNError

__all__ = ["ALBEDO", "CONTRAST", "REST_GENDER", "REST_DATASET", "sample_identity"]

# Fitzpatrick type -> mean albedo (gray reflectance) and feature contrast
ALBEDO: dict[int, float] = {1: 0.80, 2: 0.72, 3: 0.62, 4: 0.52, 5: 0.40, 6: 0.30}
CONTRAST: dict[int, float] = {1: 1.0, 2: 0.95, 3: 0.88, 4: 0.8, 5: 0.7, 6: 0.62}


def _mix(rng: np.random.Generator, p: float, lo: float, hi: float, else_: float = 0.0) -> float:
    """With probability ``p`` a uniform draw from [lo, hi], else ``else_`` (two draws always)."""
    u, v = rng.random(), rng.uniform(lo, hi)
    return v if u < p else else_


# Resting idiosyncrasies by group: (rest_brow mean, P(forehead lines), P(glabellar lines)) by
# gender -- women's brows sit higher (AU1/2-like), men's lower with more glabellar and forehead
# lines (AU4-, AU1/2-like); and (extra line probability, fold shift, aperture) by dataset --
# DISFA's participants are 18-50 years old, BP4D's 18-29: more permanent lines, deeper
# nasolabial folds (AU6/10/12-like) and slightly narrower lids (AU7-like).
REST_GENDER: dict[str, tuple[float, float, float]] = {"F": (0.006, 0.25, 0.15),
                                                      "M": (-0.006, 0.35, 0.35)}
REST_DATASET: dict[str, tuple[float, float, float]] = {"bp4d": (0.0, 0.0, 1.0),
                                                       "disfa": (0.15, 0.1, 0.95)}


def sample_identity(rng: np.random.Generator, gender: str, skin_type: int,
                    identity_strength: float = 1.0, dataset: str = "bp4d") -> dict[str, float]:
    """One person's renderer parameters.

    Gender shifts jaw, face width, brow thickness/height and hair; skin type sets albedo and
    feature contrast; gender and dataset (an age proxy) shift the resting idiosyncrasies
    (:data:`REST_GENDER`, :data:`REST_DATASET`).  ``identity_strength`` interpolates every
    parameter between the reference identity (0: everybody identical) and the drawn one (1).
    The draws are made in a fixed order whatever the strength (and group), so the same
    generator gives the same person at every strength.
    """
    if not 0.0 <= identity_strength <= 1.0:
        raise DeepFNError(f"identity_strength must be in [0, 1], got {identity_strength}")
    if gender not in ("F", "M") or skin_type not in ALBEDO or dataset not in REST_DATASET:
        raise DeepFNError(f"gender must be F/M, skin_type 1..6 and dataset bp4d/disfa, got "
                          f"{gender!r}/{skin_type!r}/{dataset!r}")
    f = gender == "F"
    n = rng.normal
    lighter, darker = skin_type <= 2, skin_type >= 5
    p: dict[str, float] = {
        "face_width": n(0.465 if f else 0.495, 0.02),
        "face_length": n(0.63 if f else 0.65, 0.022),
        "jaw": n(0.08 if f else 0.24, 0.06),
        "eye_size": n(1.03 if f else 0.98, 0.08),
        "eye_spacing": n(0.2, 0.012),
        "eye_height": n(-0.08, 0.014),
        "brow_thickness": n(0.03 if f else 0.046, 0.006),
        "brow_height": n(0.135 if f else 0.115, 0.013),
        "brow_arch": n(0.032 if f else 0.018, 0.009),
        "nose_length": n(0.255 if f else 0.265, 0.018),
        "nose_width": n(0.064 if f else 0.074, 0.007),
        "lip_thickness": n(1.06 if f else 0.95, 0.15),
        "mouth_width": n(0.145, 0.011),
        "philtrum": n(0.13, 0.009),
        "hairline": n(-0.5, 0.035) if f else n(-0.5, 0.045) - _mix(rng, 0.2, 0.05, 0.12),
        "fringe": _mix(rng, 0.4 if f else 0.15, 0.35, 1.0),
        "hair_length": _mix(rng, 0.8, 0.55, 1.0, else_=rng.uniform(0.15, 0.5)) if f
        else _mix(rng, 0.15, 0.3, 0.8, else_=rng.uniform(0.0, 0.25)),
    }
    blond = rng.random() < (0.4 if lighter else 0.0)
    p["hair_tone"] = rng.uniform(0.35, 0.62) if blond else \
        n(0.08 if darker else 0.13, 0.03)
    p["brow_tone"] = 0.75 * p["hair_tone"] + 0.06 + n(0.0, 0.02)
    p["beard"] = 0.0 if f else _mix(rng, 0.45, 0.12, 1.0)
    p["glasses"] = float(rng.random() < 0.25)
    p["ear_size"] = n(1.0, 0.07)
    p["albedo"] = ALBEDO[skin_type] + n(0.0, 0.025)
    p["contrast"] = CONTRAST[skin_type] * n(1.0, 0.06)
    p["iris_tone"] = rng.uniform(0.15, 0.55) if lighter else rng.uniform(0.06, 0.2)
    p["lip_tone"] = n(1.0, 0.15)
    p["shirt_tone"] = rng.uniform(0.1, 0.9)
    # resting idiosyncrasies (look like AU activity; the person-independent model's trap)
    brow, p_forehead, p_furrow = REST_GENDER[gender]
    older, fold, aperture = REST_DATASET[dataset]
    p["rest_brow"] = n(brow, 0.021)
    p["rest_corner"] = n(0.0, 0.016)
    p["rest_fold"] = rng.uniform(0.05, 0.75) + fold
    p["rest_aperture"] = n(aperture, 0.12)
    p["rest_forehead"] = _mix(rng, p_forehead + older, 0.15, 0.55)
    p["rest_furrow"] = _mix(rng, p_furrow + older, 0.15, 0.5)
    s = float(identity_strength)
    out = {}
    for k, (ref, lo, hi) in IDENTITY_PARAMS.items():
        v = float(np.clip(p[k], lo, hi))
        out[k] = float(np.float32(REFERENCE_IDENTITY[k] + s * (v - ref)))
    return out
