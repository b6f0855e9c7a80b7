"""Face cropping for the importers: OpenCV's Haar frontal-face cascade, or ``none``.

``haar``  finds faces with ``haarcascade_frontalface_default.xml`` (bundled with opencv), keeps the
          largest one, grows its box to a square with a ``margin`` on every side (replicating the
          border where the square leaves the frame) and resizes it to ``image_size``.
``none``  assumes the frames are already face crops: center-crops to a square and resizes.

Both return a gray uint8 ``(image_size, image_size)`` image, or None when no face is found.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import cv2.data  # the stubs of cv2 do not declare its `data` submodule
import numpy as np

from deepfn.errors import DeepFNError

__all__ = ["DETECTORS", "FaceCropper"]

DETECTORS: tuple[str, ...] = ("haar", "none")
CASCADE = "haarcascade_frontalface_default.xml"
# Detection runs on a copy whose longer side is at most this many pixels (BP4D frames are
# 1392x1040, DISFA 1024x768: full-size detection would dominate the import time).
DETECT_MAX_SIDE = 480


class FaceCropper:
    """Crop the largest face of a frame to a gray ``image_size`` square (None: no face)."""

    def __init__(self, mode: str = "haar", image_size: int = 128, *, margin: float = 0.1,
                 min_neighbors: int = 5, min_face_fraction: float = 0.1) -> None:
        if mode not in DETECTORS:
            raise DeepFNError(f"unknown face detector {mode!r}; use one of {', '.join(DETECTORS)}")
        if int(image_size) < 8:
            raise DeepFNError(f"image_size {image_size} is too small; use at least 8 pixels")
        self.mode = mode
        self.image_size = int(image_size)
        self.margin = float(margin)
        self.min_neighbors = int(min_neighbors)
        self.min_face_fraction = float(min_face_fraction)
        self._cascade: cv2.CascadeClassifier | None = None
        if mode == "haar":
            path = Path(cv2.data.haarcascades) / CASCADE
            cascade = cv2.CascadeClassifier(str(path))
            if cascade.empty():
                raise DeepFNError(f"{path}: cannot load OpenCV's Haar face cascade; reinstall "
                                  "opencv-python-headless or use detector 'none'")
            self._cascade = cascade

    def __repr__(self) -> str:
        return f"FaceCropper(mode={self.mode!r}, image_size={self.image_size})"

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        return self.crop(image)

    def crop(self, image: np.ndarray) -> np.ndarray | None:
        gray = _to_gray(image)
        if self.mode == "none":
            h, w = gray.shape
            side = min(h, w)
            y0, x0 = (h - side) // 2, (w - side) // 2
            return self._resize(gray[y0:y0 + side, x0:x0 + side])
        box = self.detect(gray)
        if box is None:
            return None
        x, y, w, h = box
        side = max(w, h) * (1.0 + 2.0 * self.margin)
        size = max(1, int(round(side)))
        patch = cv2.getRectSubPix(gray, (size, size), (x + w / 2.0, y + h / 2.0))
        return self._resize(patch)

    def detect(self, gray: np.ndarray) -> tuple[int, int, int, int] | None:
        """The largest face box ``(x, y, w, h)`` in ``gray``'s coordinates, or None."""
        assert self._cascade is not None
        h, w = gray.shape
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = gray if scale == 1.0 else cv2.resize(
            gray, (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA)
        min_side = max(20, int(self.min_face_fraction * min(small.shape)))
        if min(small.shape) < min_side:
            return None
        faces = self._cascade.detectMultiScale(
            small, scaleFactor=1.1, minNeighbors=self.min_neighbors, minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        fx, fy, fw, fh = max((tuple(int(v) for v in f) for f in faces),
                             key=lambda f: f[2] * f[3])
        return (round(fx / scale), round(fy / scale), round(fw / scale), round(fh / scale))

    def _resize(self, patch: np.ndarray) -> np.ndarray:
        s = self.image_size
        interp = cv2.INTER_AREA if min(patch.shape) >= s else cv2.INTER_LINEAR
        out = cv2.resize(patch, (s, s), interpolation=interp)
        return np.ascontiguousarray(out, dtype=np.uint8)


def _to_gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise ValueError(f"expected a gray or BGR image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image
