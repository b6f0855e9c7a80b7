"""Eq. 1 on a hand case, Adam parity, and exact resume after a simulated kill."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepfn.normalizer.augment import AugmentParams
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.train import (
    Adam,
    NormalizerTrainConfig,
    deepfn_loss,
    fit_normalizer,
    frames_to_tensor,
)

ARCH = ArchConfig(size=32, width=4, latent=16)


def test_eq1_loss_on_a_hand_case():
    x = torch.zeros(1, 1, 2, 2)
    x_hat = torch.full((1, 1, 2, 2), 0.5)                       # |0 - .5| = .5 everywhere
    y = torch.ones(1, 1, 2, 2)
    y_hat = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])           # (0 + 1 + .5 + 0) / 4
    total, lx, ly = deepfn_loss(x, x_hat, y, y_hat)
    assert lx.item() == pytest.approx(0.5)
    assert ly.item() == pytest.approx(0.375)
    assert total.item() == pytest.approx(0.875)


def test_eq1_terms_are_means_so_batch_sizes_may_differ():
    x, y = torch.zeros(3, 1, 4, 4), torch.zeros(5, 1, 4, 4)
    total, _, _ = deepfn_loss(x, x + 0.25, y, y + 0.5)
    assert total.item() == pytest.approx(0.75)


def test_adam_matches_torch_optim_adam():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    b.load_state_dict(a.state_dict())
    ours = Adam(a.parameters(), lr=1e-2, betas=(0.5, 0.999))
    ref = torch.optim.Adam(b.parameters(), lr=1e-2, betas=(0.5, 0.999))
    for _ in range(15):
        x = torch.randn(4, 6)
        for model, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)


def _frames(seed: int, n: int = 12) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def _run(cfg: NormalizerTrainConfig, checkpoint: Path | None, stop_after: int | None = None,
         model: DeepFNAutoencoder | None = None):
    if model is None:
        torch.manual_seed(0)
        model = DeepFNAutoencoder(ARCH)
    state = fit_normalizer(model, _frames(1), _frames(2), cfg, torch.Generator().manual_seed(5),
                           checkpoint=checkpoint, key="k", stop_after=stop_after)
    return model, state


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_killed_run_resumes_to_the_same_weights(tmp_path: Path, precision: str):
    cfg = NormalizerTrainConfig(iterations=8, batch_size=4, lr=1e-3, precision=precision,
                                augment=AugmentParams(), checkpoint_every=2, log_every=2)
    straight, s_state = _run(cfg, None)
    ck = tmp_path / "work" / "F001-k.pt"
    # "killed" after iteration 5: the last checkpoint is at 4, iteration 5 is lost
    _, killed = _run(cfg, ck, stop_after=5)
    assert killed.iteration == 5 and ck.exists()
    torch.manual_seed(999)  # a fresh process: different global RNG, fresh init
    resumed, r_state = _run(cfg, ck, model=DeepFNAutoencoder(ARCH))
    assert r_state.resumed_from == 4 and r_state.iteration == 8
    assert r_state.loss_subject == pytest.approx(s_state.loss_subject, abs=1e-6)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)


def test_training_reduces_the_loss():
    cfg = NormalizerTrainConfig(iterations=40, batch_size=8, lr=3e-3, precision="fp32",
                                augment=AugmentParams(rotation=0, scale=0, translation=0,
                                                      warp_strength=0.0))
    torch.manual_seed(0)
    model = DeepFNAutoencoder(ARCH)
    flat = torch.full((8, 1, 32, 32), 0.8)
    state = fit_normalizer(model, flat, 1.0 - flat, cfg, torch.Generator().manual_seed(0))
    assert state.loss_subject[-1] < 0.5 * state.loss_subject[0]
    assert state.loss_template[-1] < 0.5 * state.loss_template[0]


def test_log_callback_gets_window_means_and_speed():
    calls: list[tuple[int, dict[str, float]]] = []
    cfg = NormalizerTrainConfig(iterations=5, batch_size=2, precision="fp32", log_every=2)
    state = fit_normalizer(DeepFNAutoencoder(ARCH), _frames(1), _frames(2), cfg,
                           torch.Generator().manual_seed(0),
                           on_log=lambda i, m: calls.append((i, m)))
    assert [i for i, _ in calls] == [2, 4, 5]
    assert calls[0][1]["loss_subject"] == pytest.approx(sum(state.loss_subject[:2]) / 2)
    assert set(calls[-1][1]) == {"loss_subject", "loss_template", "iterations_per_s"}


def test_frames_to_tensor_scales_uint8():
    import numpy as np

    t = frames_to_tensor(np.array([[[0, 255]]], dtype=np.uint8))
    assert t.shape == (1, 1, 1, 2) and t.tolist() == [[[[0.0, 1.0]]]]
    with pytest.raises(ValueError, match="uint8"):
        frames_to_tensor(np.zeros((2, 2)))


def test_finetune_decoder_subject_trains_only_dx(tmp_path: Path):
    from deepfn.normalizer.jobs import set_trainable

    torch.manual_seed(0)
    model = set_trainable(DeepFNAutoencoder(ARCH), "decoder_subject")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _run(NormalizerTrainConfig(iterations=4, batch_size=4, precision="fp32"), tmp_path / "w.pt",
         model=model)
    after = model.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"decoder_subject"}  # E and D^y as the warm start left them
    with pytest.raises(Exception, match="normalize.finetune"):
        set_trainable(model, "encoder")


def test_decoder_subject_finetune_resumes_to_the_same_weights(tmp_path: Path):
    from deepfn.normalizer.jobs import set_trainable

    cfg = NormalizerTrainConfig(iterations=6, batch_size=4, lr=1e-3, precision="fp32",
                                checkpoint_every=2, log_every=2)

    def frozen() -> DeepFNAutoencoder:
        torch.manual_seed(0)
        return set_trainable(DeepFNAutoencoder(ARCH), "decoder_subject")

    straight, _ = _run(cfg, None, model=frozen())
    ck = tmp_path / "F001-k.pt"
    _run(cfg, ck, stop_after=3, model=frozen())  # killed: last checkpoint at 2
    resumed, state = _run(cfg, ck, model=frozen())  # optimizer state holds D^x's tensors only
    assert state.resumed_from == 2 and state.iteration == 6
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5, msg=name)



DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))]


@pytest.mark.parametrize("device", DEVICES)
def test_a_run_on_a_device_matches_the_cpu_and_resumes_on_the_other(tmp_path: Path,
                                                                     device: str):
    """``device`` honoured: the same seed gives the CPU's losses (fp32), and a checkpoint
    written on one device resumes on the other to the straight run's weights."""
    from deepfn.compute.device import resolve_device

    dev = str(resolve_device(device))
    base = NormalizerTrainConfig(iterations=6, batch_size=4, lr=1e-3, precision="fp32",
                                 augment=AugmentParams(), checkpoint_every=2, log_every=2)
    on_dev = NormalizerTrainConfig(**{**base.__dict__, "device": dev})
    cpu_model, cpu_state = _run(base, None)
    dev_model, dev_state = _run(on_dev, None)
    assert next(dev_model.parameters()).device.type == torch.device(dev).type
    assert dev_state.loss_subject == pytest.approx(cpu_state.loss_subject, abs=1e-5)
    ck = tmp_path / "work" / "F001-k.pt"
    _run(on_dev, ck, stop_after=3)                       # killed on the device at 3 (ckpt at 2)
    resumed, state = _run(base, ck, model=DeepFNAutoencoder(ARCH))   # resumed on the CPU
    assert state.resumed_from == 2 and state.iteration == 6
    for (name, p), q in zip(cpu_model.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(p.cpu(), q.cpu(), atol=1e-5, rtol=1e-4, msg=name)


def test_a_cpu_run_projected_past_an_hour_warns_with_the_projection(caplog):
    """The paper profile on a CPU must not be a silent two-week run."""
    import logging

    from deepfn.normalizer import train as train_mod

    cfg = NormalizerTrainConfig(iterations=3, batch_size=4, precision="fp32")
    with caplog.at_level(logging.WARNING, logger=train_mod.__name__):
        _run(cfg, None)
    assert not caplog.records                                 # 3 tiny steps: seconds
    # log_every=1: losses are read back after every step, and it still warns once
    long = NormalizerTrainConfig(iterations=50_000_000, batch_size=4, precision="fp32",
                                 log_every=1)
    with caplog.at_level(logging.WARNING, logger=train_mod.__name__):
        _run(long, None, stop_after=4)
    (rec,) = caplog.records
    assert "49999999 more iterations" in rec.getMessage() and "hours" in rec.getMessage()
    assert "compute.device" in rec.getMessage()
