"""The normalization methods: the person-calibration shifts are exact and read no labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfn.config.settings import NORMALIZATIONS
from deepfn.errors import DeepFNError
from deepfn.normalizer.methods import (
    BASELINES,
    METHODS,
    TRANSFERRED,
    make_normalizer,
    method_dir,
    person_face,
    person_shift,
    shift_frames,
)
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.preview import reconstruct


def _frames(seed: int, n: int = 9, size: int = 8, lo: int = 100, hi: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, (n, size, size), dtype=np.uint8)


def test_the_methods_are_the_settings_names():
    assert METHODS == NORMALIZATIONS
    assert TRANSFERRED == ("deepfn", "person_mean", "person_median")
    assert set(BASELINES) < set(TRANSFERRED)


@pytest.mark.parametrize("stat", ["mean", "median"])
def test_shift_moves_the_person_statistic_onto_the_templates(stat: str):
    x, t = _frames(0), _frames(1, n=7)  # mid-range values: no clipping
    out = person_shift(x, t, stat)
    fn = np.mean if stat == "mean" else np.median
    expected = x.astype(np.float64) - fn(x, axis=0) + fn(t.astype(np.float64), axis=0)
    assert out.dtype == np.uint8 and out.shape == x.shape
    assert np.abs(out - expected).max() <= 0.5 + 1e-4  # rounding only
    # the subject's statistic of the output is the template's (up to rounding)
    assert np.abs(fn(out.astype(np.float64), axis=0) - fn(t.astype(np.float64), axis=0)
                  ).max() <= 0.5 + 1e-4
    # a frame's deviation from the person's statistic is kept (the expression survives)
    dev_in = x.astype(np.float64) - fn(x, axis=0)
    dev_out = out.astype(np.float64) - fn(t.astype(np.float64), axis=0)
    assert np.abs(dev_in - dev_out).max() <= 0.5 + 1e-4


def test_median_is_not_the_mean():
    x = np.zeros((3, 2, 2), dtype=np.uint8)
    x[2] = 90  # one outlier frame: mean 30, median 0
    t = np.full((3, 2, 2), 100, dtype=np.uint8)
    assert np.all(person_shift(x, t, "mean")[0] == 70)
    assert np.all(person_shift(x, t, "median")[0] == 100)


def test_shift_clips_to_the_uint8_range():
    x = np.array([[[0]], [[255]]], dtype=np.uint8)  # mean 127.5
    t = np.array([[[250]], [[250]]], dtype=np.uint8)
    out = shift_frames(x, person_face(x), person_face(t))
    assert out.tolist() == [[[122]], [[255]]]  # 250 - 127.5 + 0 = 122.5 -> 122; 377.5 -> 255


def test_the_baselines_use_only_frames_no_labels():
    """A normalizer is a function of the frames alone: same frames, same output, whatever the
    labels or the order of the other frames."""
    x, t = _frames(2), _frames(3)
    for m in BASELINES:
        f = make_normalizer(m, template_frames=t)
        perm = np.random.default_rng(0).permutation(len(x))
        assert np.array_equal(f(x)[perm], f(x[perm]))
        assert np.array_equal(f(x), person_shift(x, t, m.removeprefix("person_")))  # type: ignore[arg-type]


def test_make_normalizer_deepfn_and_original():
    torch.manual_seed(0)
    model = DeepFNAutoencoder(ArchConfig(32, 4, 8))
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert np.array_equal(make_normalizer("deepfn", model=model)(x),
                          reconstruct(model, x, "template"))
    assert make_normalizer("original")(x) is x
    with pytest.raises(DeepFNError, match="experiments.normalizations: unknown method 'zca'"):
        make_normalizer("zca")
    with pytest.raises(ValueError, match="template"):
        make_normalizer("person_mean")


def test_method_dir():
    assert str(method_dir("data/normalized", "person_median")) == "data/normalized/person_median"
    with pytest.raises(DeepFNError, match="no normalized corpus"):
        method_dir("data/normalized", "original")
