"""The ensemble strategy gives what the one-at-a-time trainer gives (same jobs, same seeds)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from deepfn.au.ensemble import (
    FrameBank,
    ModelSpec,
    _StackedAdam,
    fit_ensemble,
    group_jobs,
    train_jobs,
)
from deepfn.au.protocol import ALL_PARTS
from deepfn.au.strategies import EnsembleStrategy, make_strategy
from deepfn.au.trainer import ClassifierTrainConfig, TrainJob, train_job
from deepfn.compute.device import resolve_compute
from deepfn.data.corpus import AUS, DISFA_AUS
from deepfn.errors import DeepFNError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))]
TESTS = (("F", ("F003", "F004")), ("M", ("M003",)))


def _jobs(corpora) -> list[TrainJob]:
    """Different train sets (1-3 subjects, 20-60 frames, a strided one), batch sizes, epochs,
    lr and weight decay: every epoch ends on a partial batch of a different size."""
    root = str(corpora["original"])

    def cfg(**kw) -> ClassifierTrainConfig:
        return ClassifierTrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 3e-3,
                                        "precision": "fp32", **kw})

    return [
        TrainJob("a", root, ("F001", "M001"), ("F002",), TESTS, tuple(AUS), 3, cfg()),
        TrainJob("b", root, ("F002",), ("M002",), TESTS, tuple(AUS), 4, cfg(epochs=5)),
        TrainJob("c", root, ("F001", "M002", "SN001"), ("F005",), TESTS, tuple(AUS), 5,
                 cfg(batch_size=24, weight_decay=1e-3, train_stride=2)),
        TrainJob("d", root, ("M004", "F001"), ("SN002",), (("all", ("F003", "SN003")),),
                 tuple(AUS), 3, cfg(epochs=4, batch_size=7, lr=1e-3, beta1=0.9)),
        # subject_frames: whole -- every part of the train and validation subjects
        TrainJob("w", root, ("F001", "M001"), ("F002", "M002"), TESTS, tuple(AUS), 6,
                 cfg(epochs=2), ALL_PARTS, ALL_PARTS),
    ]


def _close_rows(a: list[dict], b: list[dict]) -> None:
    assert [(r["participant"], r["au"]) for r in a] == [(r["participant"], r["au"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k, v in ra.items():
            if isinstance(v, float):
                assert (math.isnan(v) and math.isnan(rb[k])) or v == pytest.approx(rb[k],
                                                                                   abs=1e-6), k
            else:
                assert v == rb[k], k


@pytest.mark.parametrize("device", DEVICES)
def test_ensemble_equals_one_job_at_a_time(corpora, device: str) -> None:
    jobs = _jobs(corpora)
    seq = [train_job(j) for j in jobs]
    ens = train_jobs(jobs, resolve_compute(device, "fp32"))
    assert [r.key for r in ens] == [j.key for j in jobs]
    for s, e in zip(seq, ens, strict=True):
        assert len(e.train_loss) == len(s.train_loss) == next(
            j.config.epochs for j in jobs if j.key == s.key)
        assert e.best_epoch == s.best_epoch, s.key
        np.testing.assert_allclose(e.train_loss, s.train_loss, rtol=1e-5, err_msg=s.key)
        np.testing.assert_allclose(e.val_f1, s.val_f1, atol=1e-6, err_msg=s.key)
        assert e.images == s.images and e.aus_without_positives == s.aus_without_positives
        assert set(e.tests) == set(s.tests)
        for g in s.tests:
            _close_rows(e.tests[g], s.tests[g])
    # the jobs really differ (otherwise equal histories would prove little)
    assert len({tuple(r.train_loss[:3]) for r in seq}) == len(seq)


def test_ensemble_equals_one_job_at_a_time_with_balance_flip_and_tuned_thresholds(
        corpora) -> None:
    """Class-balanced loss, mirrored frames and validation thresholds: the same models and test
    tables on both paths (flip on some jobs only, so the random streams must stay aligned)."""
    jobs = [dataclasses.replace(j, config=dataclasses.replace(
        j.config, class_balance=True, tune_thresholds=True, flip=k % 2 == 0))
        for k, j in enumerate(_jobs(corpora))]
    seq = [train_job(j) for j in jobs]
    ens = train_jobs(jobs)
    for s, e in zip(seq, ens, strict=True):
        assert e.best_epoch == s.best_epoch, s.key
        np.testing.assert_allclose(e.train_loss, s.train_loss, rtol=1e-5, err_msg=s.key)
        np.testing.assert_allclose(e.val_f1, s.val_f1, atol=1e-6, err_msg=s.key)
        for g in s.tests:
            _close_rows(e.tests[g], s.tests[g])
    plain = [train_job(j) for j in _jobs(corpora)]
    for p, s in zip(plain, seq, strict=True):  # the options change the training
        assert p.train_loss != s.train_loss, s.key
    with pytest.raises(ValueError, match="group_jobs"):  # mixed class balance: not one group
        train_jobs([jobs[0], _jobs(corpora)[1]])
    assert len(group_jobs([jobs[0], _jobs(corpora)[1]])) == 2


def test_one_job_alone_and_in_a_group_give_the_same(corpora) -> None:
    jobs = _jobs(corpora)
    alone = train_jobs(jobs[1:2])[0]
    grouped = train_jobs(jobs)[1]
    np.testing.assert_allclose(alone.train_loss, grouped.train_loss, rtol=1e-5)
    assert alone.best_epoch == grouped.best_epoch


def test_group_jobs_splits_by_shape_and_size(corpora) -> None:
    jobs = _jobs(corpora)
    disfa = TrainJob("e", jobs[0].corpus_dir, ("SN001",), ("SN002",), (("D", ("SN003",)),),
                     tuple(DISFA_AUS), 1, jobs[0].config)
    groups = group_jobs([*jobs, disfa], max_models=3)
    assert [[j.key for j in g] for g in groups] == [["a", "b", "c"], ["d", "w"], ["e"]]
    with pytest.raises(ValueError, match="group_jobs"):
        train_jobs([jobs[0], disfa])


def test_frame_bank_stores_shared_subjects_once() -> None:
    bank = FrameBank()
    x = torch.randn(5, 1, 12, 12)
    r1 = bank.add(("c", "F001", 0, 1), x)
    r2 = bank.add(("c", "F002", 0, 1), torch.randn(3, 1, 12, 12))
    r3 = bank.add(("c", "F001", 0, 1), x)
    assert torch.equal(r1, r3) and r2.tolist() == [5, 6, 7]
    with pytest.raises(ValueError, match="image size"):
        bank.add(("c", "F003", 0, 1), torch.randn(2, 1, 16, 16))
    t = bank.tensor(torch.device("cpu"))
    assert t.shape == (8, 1, 12, 12) and torch.equal(t[r1], x)


def test_stacked_adam_is_k_torch_adams_and_skips_inactive_models() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5)
    specs = [ModelSpec(torch.zeros(1, dtype=torch.int64), torch.zeros(1, 1),
                       torch.zeros(1, dtype=torch.int64), np.zeros((1, 1), np.int8), 0,
                       ClassifierTrainConfig(lr=lr, beta1=b1, weight_decay=wd))
             for lr, b1, wd in ((1e-2, 0.5, 0.0), (3e-3, 0.9, 1e-2), (1e-3, 0.7, 0.0))]
    stacked = {"w": w.clone().requires_grad_()}
    opt = _StackedAdam(stacked, specs)
    refs = [w[k].clone().requires_grad_() for k in range(3)]
    ref_opts = [torch.optim.Adam([r], lr=s.config.lr, betas=(s.config.beta1, s.config.beta2),
                                 weight_decay=s.config.weight_decay)
                for r, s in zip(refs, specs, strict=True)]
    schedule = [(1, 1, 1), (1, 0, 1), (0, 0, 1), (1, 1, 1), (1, 1, 0)]
    for step, act in enumerate(schedule):
        g = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(step))
        stacked["w"].grad = g * torch.tensor(act, dtype=torch.float32).view(3, 1, 1)
        opt.step(torch.tensor(act, dtype=torch.bool))
        for k in range(3):
            if act[k]:
                refs[k].grad = g[k].clone()
                ref_opts[k].step()
    for k in range(3):
        torch.testing.assert_close(stacked["w"][k], refs[k].detach(), rtol=1e-5, atol=1e-7)
    assert opt.step_count.tolist() == [4.0, 3.0, 4.0]


def test_fit_ensemble_selects_each_models_own_best_epoch() -> None:
    """Models whose validation F1 is NaN (no positives) keep epoch 1; others their best."""
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(60, 1, 16, 16, generator=g)
    y = (torch.rand(60, 2, generator=g) < 0.5).float()
    yv_pos = y[40:].numpy().astype(np.int8)
    yv_none = np.zeros_like(yv_pos)
    specs = [ModelSpec(torch.arange(40), y[:40], torch.arange(40, 60), yv, seed,
                       ClassifierTrainConfig(epochs=4, batch_size=8, lr=1e-2))
             for yv, seed in ((yv_pos, 0), (yv_none, 1))]
    fit = fit_ensemble(bank, specs, 2)
    assert all(math.isnan(v) for v in fit.val_f1[1]) and fit.best_epoch[1] == 1
    finite = fit.val_f1[0]
    assert fit.best_epoch[0] == 1 + finite.index(max(finite))
    assert fit.params["fc3.weight"].shape == (2, 2, 84)


def test_ensemble_strategy_runs_every_job_through_on_result(corpora) -> None:
    jobs = _jobs(corpora)
    got: dict[str, object] = {}
    EnsembleStrategy().run(jobs, lambda r: got.setdefault(r.key, r))
    seq = {j.key: train_job(j) for j in jobs}
    assert set(got) == set(seq)
    for k, r in got.items():
        assert r.best_epoch == seq[k].best_epoch, k  # type: ignore[attr-defined]


def test_auto_picks_the_ensemble_on_cuda_and_the_pool_refuses_a_gpu() -> None:
    assert isinstance(make_strategy("auto", 0, 100, 1e9, device="cuda:0"), EnsembleStrategy)
    assert not isinstance(make_strategy("auto", 0, 100, 1e9, device="cpu"), EnsembleStrategy)
    with pytest.raises(DeepFNError, match="experiments.strategy: process .* compute.device"):
        make_strategy("process", 2, 100, device="cuda:0")


@pytest.mark.parametrize("device", DEVICES)
def test_one_job_on_a_device_matches_the_cpu(corpora, device: str) -> None:
    """The trainer honours ``config.device``: the same job on ``device`` gives the CPU's
    best epoch and (fp32) losses."""
    job = _jobs(corpora)[0]
    cpu = train_job(job)
    dev = train_job(dataclasses.replace(
        job, config=dataclasses.replace(job.config, device=str(resolve_compute(device).device))))
    assert dev.best_epoch == cpu.best_epoch
    np.testing.assert_allclose(dev.train_loss, cpu.train_loss, rtol=1e-4)
