"""Preview images of an autoencoder: which frames to show and the labelled grid PNG.

A normalizer's preview has one column per frame and three rows::

    input             x
    subject recon.    D^x(E(x))
    to template       D^y(E(x))      (Eq. 2: what the classifier will see)

so a glance tells whether the expression (brows, eyes, mouth) moved onto the template's face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from deepfn.normalizer.model import DeepFNAutoencoder
from deepfn.normalizer.train import frames_to_tensor
from deepfn.utils.io import atomic_path

__all__ = ["pick_preview_frames", "reconstruct", "grid_image", "save_png", "preview_rows"]

LABEL_W = 92


def pick_preview_frames(intensity: np.ndarray, sequence: np.ndarray, n: int = 6) -> np.ndarray:
    """Indices of ``n`` frames: the most neutral one, then the most expressive frame of each
    sequence (by summed coded AU intensity), most expressive first."""
    total = np.where(intensity < 0, 0, intensity).sum(axis=1)
    picks = [int(np.argmin(total))]
    best_per_seq = []
    for seq in np.unique(sequence):
        idx = np.flatnonzero(sequence == seq)
        best_per_seq.append(int(idx[np.argmax(total[idx])]))
    best_per_seq.sort(key=lambda i: -total[i])
    picks += [i for i in best_per_seq if i not in picks]
    if len(picks) < n:  # few sequences: fill with the next most expressive frames
        picks += [int(i) for i in np.argsort(-total, kind="stable") if int(i) not in picks]
    return np.asarray(picks[:n])


@torch.inference_mode()
def reconstruct(model: DeepFNAutoencoder, frames: np.ndarray, decoder: str,
                batch_size: int = 256, source: str = "subject") -> np.ndarray:
    """uint8 (N, S, S) -> uint8 (N, S, S): ``D(E(x))`` with ``decoder`` 'subject'/'template'
    (fp32, eval mode, ``batch_size`` frames at a time) of ``source``'s frames (the subject's, or
    'template' for the template's own), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out = np.empty_like(frames)
    for i in range(0, len(frames), batch_size):
        x = frames_to_tensor(frames[i:i + batch_size]).to(device)
        y = model(x, decoder=decoder, source=source)
        out[i:i + batch_size] = y[:, 0].float().mul_(255.0).round_().clamp_(0, 255).to(
            torch.uint8).cpu().numpy()
    return out


def grid_image(rows: list[np.ndarray], labels: list[str], tile: int = 96) -> np.ndarray:
    """Rows of uint8 (N, H, W) frames -> one uint8 image, each row labelled on its left."""
    if len(rows) != len(labels) or not rows:
        raise ValueError("need one label per row and at least one row")
    n = max(len(r) for r in rows)
    canvas = Image.new("L", (LABEL_W + n * tile, len(rows) * tile), color=255)
    draw = ImageDraw.Draw(canvas)
    for r, (frames, label) in enumerate(zip(rows, labels, strict=True)):
        draw.text((4, r * tile + tile // 2 - 6), label, fill=0)
        for c, frame in enumerate(frames):
            img = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize(
                (tile, tile), Image.Resampling.NEAREST if frame.shape[0] < tile
                else Image.Resampling.BILINEAR)
            canvas.paste(img, (LABEL_W + c * tile, r * tile))
    return np.asarray(canvas)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def preview_rows(model: DeepFNAutoencoder, frames: np.ndarray, *, subject: bool = True
                 ) -> tuple[list[np.ndarray], list[str]]:
    """The preview's rows for ``frames`` (uint8 (N, S, S)): input, D^x(E(x)), D^y(E(x))."""
    rows, labels = [frames], ["input"]
    if subject:
        rows.append(reconstruct(model, frames, "subject"))
        labels.append("D^x(E(x))")
    rows.append(reconstruct(model, frames, "template",
                            source="subject" if subject else "template"))
    labels.append("D^y(E(x))" if subject else "D^y(E(y))")
    return rows, labels
