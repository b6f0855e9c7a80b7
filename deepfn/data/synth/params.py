"""Names, reference values and ranges of the renderer's identity and nuisance parameters."""

from __future__ import annotations

import torch

from deepfn.errors import DeepFNError

__all__ = [
    "IDENTITY_PARAMS", "NUISANCE_PARAMS", "REFERENCE_IDENTITY",
    "NEUTRAL_NUISANCE", "identity_batch", "nuisance_batch", "check_batch",
]

# name -> (reference value, low, high).  The reference is the one face everybody gets at
# identity_strength = 0; (low, high) clip sampled values so every feature stays in its window.
IDENTITY_PARAMS: dict[str, tuple[float, float, float]] = {
    # geometry (canonical units: the image spans [-1, 1], y grows downwards)
    "face_width": (0.48, 0.41, 0.56),      # half width of the face oval
    "face_length": (0.64, 0.58, 0.71),     # half height of the face oval
    "jaw": (0.15, 0.0, 0.45),              # widening of the lower face (square jaw)
    "eye_size": (1.0, 0.78, 1.22),         # scales eye width, aperture and iris
    "eye_spacing": (0.20, 0.165, 0.235),   # eye centre distance from the midline
    "eye_height": (-0.08, -0.12, -0.04),   # eye centre y
    "brow_thickness": (0.038, 0.02, 0.06),
    "brow_height": (0.125, 0.095, 0.16),   # brow above the eye centre
    "brow_arch": (0.025, 0.0, 0.05),
    "nose_length": (0.26, 0.21, 0.31),     # eye line to nose tip
    "nose_width": (0.068, 0.05, 0.09),     # half width at the nostrils
    "lip_thickness": (1.0, 0.55, 1.5),
    "mouth_width": (0.145, 0.115, 0.18),   # half width
    "philtrum": (0.13, 0.11, 0.155),       # nose tip to mouth line
    "hairline": (-0.50, -0.66, -0.38),     # hairline y at the midline
    "fringe": (0.0, 0.0, 1.0),             # bangs over the forehead
    "hair_length": (0.3, 0.0, 1.0),        # 0 = cropped, 1 = to the shoulders
    "hair_tone": (0.18, 0.04, 0.7),
    "brow_tone": (0.2, 0.05, 0.6),
    "beard": (0.0, 0.0, 1.0),              # facial hair density (some men)
    "glasses": (0.0, 0.0, 1.0),
    "ear_size": (1.0, 0.8, 1.2),
    # texture: skin type sets albedo and the contrast of facial features
    "albedo": (0.58, 0.22, 0.86),
    "contrast": (0.85, 0.5, 1.15),
    "iris_tone": (0.25, 0.08, 0.6),
    "lip_tone": (1.0, 0.5, 1.5),
    "shirt_tone": (0.4, 0.1, 0.9),
    # resting idiosyncrasies that look like AU activity
    "rest_brow": (0.0, -0.05, 0.05),       # + raised (AU1/2-like), - lowered (AU4-like)
    "rest_corner": (0.0, -0.04, 0.04),     # + up (AU12-like), - down (AU15-like)
    "rest_fold": (0.3, 0.0, 0.9),          # nasolabial fold depth (AU6/10/12-like)
    "rest_aperture": (1.0, 0.65, 1.3),     # lid aperture (< 1 looks like AU7)
    "rest_forehead": (0.0, 0.0, 0.6),      # permanent forehead lines (AU1/2-like)
    "rest_furrow": (0.0, 0.0, 0.6),        # permanent glabellar lines (AU4-like)
}
REFERENCE_IDENTITY: dict[str, float] = {k: v[0] for k, v in IDENTITY_PARAMS.items()}

# Per-frame nuisance: head pose, camera, light, sensor.  Neutral values listed.
NUISANCE_PARAMS: tuple[str, ...] = (
    "roll", "yaw", "pitch", "scale", "tx", "ty", "light_x", "light_y", "ambient", "gain",
    "gradient_x", "gradient_y", "background", "blur", "noise", "gaze", "blink", "seed",
)
NEUTRAL_NUISANCE: dict[str, float] = {
    "roll": 0.0,         # in-plane rotation, radians
    "yaw": 0.0,          # radians (rendered as depth-dependent feature shift)
    "pitch": 0.0,
    "scale": 1.0,
    "tx": 0.0, "ty": 0.0,
    "light_x": 0.0, "light_y": -0.3,   # light direction (x right, y down; z towards camera)
    "ambient": 0.5,
    "gain": 1.0,         # exposure
    "gradient_x": 0.0, "gradient_y": 0.0,  # uneven illumination across the frame
    "background": 0.35,
    "blur": 0.3,         # 0 = sharp, 1 = sigma ~1 px, 2 = sigma ~1.4 px
    "noise": 0.008,      # sensor noise sd (fraction of full scale)
    "gaze": 0.0,         # vertical gaze
    "blink": 0.0,        # lid closure 0..1
    "seed": 0.0,         # selects the noise pattern
}


def _batch(values: dict[str, float], n: int,
           overrides: dict[str, float]) -> dict[str, torch.Tensor]:
    unknown = set(overrides) - set(values)
    if unknown:
        raise DeepFNError(f"unknown parameter(s) {', '.join(sorted(unknown))}; "
                          f"allowed: {', '.join(values)}")
    merged = {**values, **overrides}
    return {k: torch.full((n,), float(v), dtype=torch.float32) for k, v in merged.items()}


def identity_batch(n: int = 1, **overrides: float) -> dict[str, torch.Tensor]:
    """The reference identity repeated ``n`` times, with some parameters overridden."""
    return _batch(REFERENCE_IDENTITY, n, overrides)


def nuisance_batch(n: int = 1, **overrides: float) -> dict[str, torch.Tensor]:
    """Neutral nuisance (frontal, even light) repeated ``n`` times, with overrides."""
    return _batch(NEUTRAL_NUISANCE, n, overrides)


def check_batch(identity: dict[str, torch.Tensor], aus: torch.Tensor,
                nuisance: dict[str, torch.Tensor]) -> int:
    """Validate the renderer inputs and return the batch size."""
    if aus.ndim != 2 or aus.shape[1] != 12:
        raise DeepFNError(f"aus must have shape (B, 12), got {tuple(aus.shape)}")
    n = aus.shape[0]
    for what, given, names in (("identity", identity, IDENTITY_PARAMS),
                               ("nuisance", nuisance, NUISANCE_PARAMS)):
        missing = [k for k in names if k not in given]
        if missing:
            raise DeepFNError(f"{what} parameters missing: {', '.join(missing)}; use "
                              f"{what}_batch() for defaults")
        for k in names:
            if tuple(given[k].shape) != (n,):
                raise DeepFNError(f"{what}[{k!r}] must have shape ({n},), got "
                                  f"{tuple(given[k].shape)}")
    return n
