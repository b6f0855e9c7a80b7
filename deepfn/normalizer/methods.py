"""Normalization methods: what the classifiers of each ``experiments.normalizations`` entry see.

==================  ==========================================================================
``original``        the preprocessed frames as they are (``data/preprocessed/clf``)
``deepfn``          Eq. 2: ``D^y(E(x))`` through the subject's own autoencoder (paper §3)
``person_mean``     ``x - mean_s + mean_template``: each person's mean frame swapped for the
                    template's (a per-person calibration, like py-feat's ``Fex.baseline``)
``person_median``   ``x - median_s + median_template`` (pixel-wise median: OpenFace's per-video
                    median normalization of its "dynamic" models, applied to the frames)
==================  ==========================================================================

The two calibrations use no labels: a subject's statistic is taken over every frame of that
subject in the AE corpus (``data/preprocessed/ae/<subject>.npz``), the same unlabelled frames
its DeepFN normalizer trains on (:func:`deepfn.normalizer.jobs.run_normalize`), and the
template's over the template's frames (the ``template`` stage's copy of the same corpus file).
Every method except ``original`` runs at the AE resolution and is then resized to
``preprocess.clf_size`` by the ``transfer`` stage exactly as DeepFN's output is
(:func:`deepfn.normalizer.transfer.resize_frames`); the shifted frames are clipped to [0, 255]
and rounded to uint8, as DeepFN's sigmoid output is.  Each method's corpus is a DVC out of its
own, ``data/normalized/<method>`` (:func:`method_dir`).

:func:`make_normalizer` is the one interface: a callable ``uint8 (N, S, S) -> uint8 (N, S, S)``
for one subject.  Importing this module pulls only numpy (and the settings' names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from deepfn.config.settings import NORMALIZATIONS
from deepfn.errors import DeepFNError

if TYPE_CHECKING:
    from deepfn.normalizer.model import DeepFNAutoencoder

__all__ = ["METHODS", "TRANSFERRED", "BASELINES", "LABELS", "Statistic", "FrameNormalizer",
           "method_dir", "person_face", "shift_frames", "person_shift", "make_normalizer"]

METHODS: tuple[str, ...] = NORMALIZATIONS
"""Every method, in report order (``experiments.normalizations`` accepts exactly these)."""
TRANSFERRED: tuple[str, ...] = tuple(m for m in METHODS if m != "original")
"""The methods the ``transfer`` stage writes, one corpus each."""
BASELINES: tuple[str, ...] = ("person_mean", "person_median")
"""The person-calibration baselines beside DeepFN."""
LABELS: dict[str, str] = {"original": "original", "deepfn": "DeepFN",
                          "person_mean": "person mean", "person_median": "person median"}

Statistic = Literal["mean", "median"]
FrameNormalizer = Callable[[np.ndarray], np.ndarray]
"""One subject's normalizer: uint8 (N, S, S) frames -> uint8 (N, S, S) on the template's face."""

_STATISTIC: dict[str, Statistic] = {"person_mean": "mean", "person_median": "median"}


def method_dir(root: str | Path, method: str) -> Path:
    """The corpus directory of ``method`` under ``root`` (``data/normalized``)."""
    if method not in TRANSFERRED:
        raise DeepFNError(f"normalization {method!r}: no normalized corpus; one of "
                          f"{', '.join(TRANSFERRED)}")
    return Path(root) / method


def person_face(frames: np.ndarray, statistic: Statistic = "mean") -> np.ndarray:
    """float32 (S, S): the pixel-wise mean or median of uint8 (N, S, S) frames."""
    if frames.ndim != 3 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, S, S) stack, got {frames.shape}")
    x = frames.astype(np.float32)
    face: np.ndarray = (x.mean(0) if statistic == "mean" else np.median(x, axis=0)).astype(
        np.float32)
    return face


def shift_frames(frames: np.ndarray, own: np.ndarray, template: np.ndarray) -> np.ndarray:
    """uint8 ``frames - own + template``, clipped to [0, 255] and rounded."""
    if own.shape != frames.shape[1:] or template.shape != frames.shape[1:]:
        raise ValueError(f"faces {own.shape} / {template.shape} do not match frames "
                         f"{frames.shape[1:]}")
    shifted = frames.astype(np.float32) - own + template
    out: np.ndarray = np.clip(shifted, 0, 255).round().astype(np.uint8)
    return out


def person_shift(frames: np.ndarray, template_frames: np.ndarray,
                 statistic: Statistic = "mean") -> np.ndarray:
    """One subject onto the template: ``frames - stat(frames) + stat(template_frames)``."""
    return shift_frames(frames, person_face(frames, statistic),
                        person_face(template_frames, statistic))


def make_normalizer(method: str, *, model: DeepFNAutoencoder | None = None,
                    template_frames: np.ndarray | None = None,
                    batch_size: int = 256) -> FrameNormalizer:
    """The normalizer of one subject: ``deepfn`` needs its ``model`` (already on its device),
    the baselines the template's frames; ``original`` is the identity."""
    if method == "original":
        return lambda frames: frames
    if method == "deepfn":
        if model is None:
            raise ValueError("deepfn needs the subject's normalizer model")
        from deepfn.normalizer.preview import reconstruct

        return lambda frames: reconstruct(model, frames, "template", batch_size)
    if method in _STATISTIC:
        if template_frames is None:
            raise ValueError(f"{method} needs the template's frames")
        stat = _STATISTIC[method]
        template = person_face(template_frames, stat)  # once, not per subject
        return lambda frames: shift_frames(frames, person_face(frames, stat), template)
    raise DeepFNError(f"experiments.normalizations: unknown method {method!r}; allowed: "
                      f"{', '.join(METHODS)}")
