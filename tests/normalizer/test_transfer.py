"""Eq. 2 over frames: shapes, dtype, and the same resize as the preprocess stage."""

from __future__ import annotations

import numpy as np
import torch

from deepfn.data.preprocess import equalize_resize
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.preview import reconstruct
from deepfn.normalizer.transfer import normalize_frames


def test_normalize_frames_is_eq2_then_the_preprocess_resize():
    torch.manual_seed(0)
    model = DeepFNAutoencoder(ArchConfig(32, 4, 8))
    frames = np.random.default_rng(0).integers(0, 256, (5, 32, 32), dtype=np.uint8)
    same = normalize_frames(model, frames, 32, batch_size=2)
    assert same.dtype == np.uint8 and same.shape == (5, 32, 32)
    with torch.no_grad():
        direct = model(torch.from_numpy(frames).unsqueeze(1).float() / 255, decoder="template")
    np.testing.assert_allclose(same, direct[:, 0].numpy() * 255, atol=0.51)
    assert np.array_equal(same, reconstruct(model, frames, "template"))
    small = normalize_frames(model, frames, 16)
    assert small.shape == (5, 16, 16)
    assert np.array_equal(small, equalize_resize(same, [16], equalize=False)[0])
