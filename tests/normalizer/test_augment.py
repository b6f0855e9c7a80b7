"""Augmentation: seeded determinism, identity at zero strength, un-warped targets."""

from __future__ import annotations

import pytest
import torch

from deepfn.normalizer import train as train_mod
from deepfn.normalizer.augment import AugmentParams, augment, random_warp_params, warp_maps
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.train import NormalizerTrainConfig, fit_normalizer


def _images(n: int = 6, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.rand(n, 1, size, size, generator=g)


def test_same_seed_same_warp_other_seed_other_warp():
    x, p = _images(), AugmentParams()
    a, ta = augment(x, p, torch.Generator().manual_seed(7))
    b, tb = augment(x, p, torch.Generator().manual_seed(7))
    c, _ = augment(x, p, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.allclose(a, c)
    assert a.shape == ta.shape == x.shape and not torch.allclose(a, x)


def test_zero_strength_is_the_identity():
    x = _images()
    p = AugmentParams(rotation=0.0, scale=0.0, translation=0.0, warp_grid=5, warp_strength=0.0)
    warped, target = augment(x, p, torch.Generator().manual_seed(0))
    torch.testing.assert_close(warped, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(target, x, atol=1e-5, rtol=0)


def test_target_is_the_unwarped_image():
    x = _images()
    # warp only: the target is the original frame, the input is not
    warp_only = AugmentParams(rotation=0.0, scale=0.0, translation=0.0, warp_strength=0.05)
    warped, target = augment(x, warp_only, torch.Generator().manual_seed(0))
    torch.testing.assert_close(target, x, atol=1e-5, rtol=0)
    assert (warped - x).abs().mean() > 0.05
    # affine only: input and target are the same transformed frame
    affine_only = AugmentParams(rotation=10.0, scale=0.05, translation=0.05, warp_strength=0.0)
    warped, target = augment(x, affine_only, torch.Generator().manual_seed(0))
    torch.testing.assert_close(warped, target, atol=1e-6, rtol=0)
    assert not torch.allclose(target, x, atol=1e-2)
    # both: the target carries the same affine as the input (same draw), minus the warp
    both = AugmentParams(rotation=10.0, scale=0.05, translation=0.05, warp_strength=0.05)
    _, target_both = augment(x, both, torch.Generator().manual_seed(0))
    torch.testing.assert_close(target_both, target, atol=1e-5, rtol=0)


def test_input_is_not_modified_in_place():
    x = _images()
    before = x.clone()
    augment(x, AugmentParams(), torch.Generator().manual_seed(0))
    assert torch.equal(x, before)


def test_pure_translation_moves_the_image_by_that_many_pixels():
    # a one-pixel shift with no rotation/scale/warp: the sampling grid is shifted by exactly 1
    size = 16
    p = AugmentParams(rotation=0.0, scale=0.0, translation=0.0, warp_strength=0.0)
    matrix, offsets = random_warp_params(2, size, p, torch.Generator().manual_seed(0))
    offsets = offsets.clone()
    offsets[:, 0] = 1.0  # +1 px in x everywhere
    grid = warp_maps(matrix, offsets, size)
    step = 2.0 / (size - 1)
    torch.testing.assert_close(grid[..., 0] - warp_maps(matrix, offsets * 0, size)[..., 0],
                               torch.full((2, size, size), step), atol=1e-5, rtol=0)


def test_warp_strength_sets_the_displacement_scale():
    size, p = 64, AugmentParams(rotation=0.0, scale=0.0, translation=0.0, warp_strength=0.05)
    matrix, offsets = random_warp_params(256, size, p, torch.Generator().manual_seed(0))
    assert abs(float(offsets.std()) - 0.05 * size) < 0.1 * 0.05 * size


def test_bad_inputs_raise_with_the_shape_got():
    with pytest.raises(ValueError, match=r"\(B, C, S, S\), got \(32, 32\)"):
        augment(torch.rand(32, 32), AugmentParams(), torch.Generator())
    with pytest.raises(ValueError, match="floating"):
        augment(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), AugmentParams(), torch.Generator())


def test_training_targets_are_the_unwarped_frames(monkeypatch: pytest.MonkeyPatch):
    """Eq. 1 compares the decoder output with the un-warped x, not the warped x' fed to E."""
    seen: dict[str, list[torch.Tensor]] = {"warped": [], "target": [], "encoded": [],
                                           "loss_target": []}
    real_augment, real_l1 = train_mod.augment, train_mod.l1_loss

    def spy_augment(images, params, generator):
        warped, target = real_augment(images, params, generator)
        seen["warped"].append(warped.clone())
        seen["target"].append(target.clone())
        return warped, target

    def spy_l1(target, pred):
        seen["loss_target"].append(target.clone())
        return real_l1(target, pred)

    model = DeepFNAutoencoder(ArchConfig(32, 4, 8))
    model.encoder.register_forward_pre_hook(lambda m, args: seen["encoded"].append(args[0]))
    monkeypatch.setattr(train_mod, "augment", spy_augment)
    monkeypatch.setattr(train_mod, "l1_loss", spy_l1)
    frames = _images(10)
    fit_normalizer(model, frames, frames.flip(0),
                   NormalizerTrainConfig(iterations=1, batch_size=4, precision="fp32"),
                   torch.Generator().manual_seed(0))
    warped, target = seen["warped"][0], seen["target"][0]           # (2B, 1, S, S)
    assert torch.equal(seen["encoded"][0], warped)                   # E sees x'
    y_t, x_t = target[:4], target[4:]                                # template, subject halves
    assert any(t.equal(x_t) for t in seen["loss_target"])            # Eq. 1 compares with x
    assert any(t.equal(y_t) for t in seen["loss_target"])
    assert not torch.allclose(warped, target)
