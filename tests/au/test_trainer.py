"""The trainer: AUs without positives, best-epoch selection, strategy equivalence, caches."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfn.au.protocol import ALL_PARTS, TEST, TRAIN, VAL, frame_parts
from deepfn.au.strategies import (
    POOL_MIN_IMAGES,
    ProcessStrategy,
    SequentialStrategy,
    make_strategy,
)
from deepfn.au.trainer import (
    POS_WEIGHT_MAX,
    ClassifierTrainConfig,
    JobResult,
    SubjectCache,
    TrainJob,
    count_train_frames,
    fit_classifier,
    part_tensors,
    pos_weight,
    train_job,
)
from deepfn.data.corpus import AUS, DISFA_AUS, read_subject, write_subject
from tests.au.conftest import make_subject


def _job(corpora, key: str = "j", seed: int = 3, aus=AUS, **cfg) -> TrainJob:
    config = ClassifierTrainConfig(**{"epochs": 3, "batch_size": 16, "lr": 3e-3, **cfg})
    return TrainJob(key, str(corpora["original"]), ("F001", "M001"), ("F002",),
                    (("F", ("F003", "F004")), ("M", ("M003",))), tuple(aus), seed, config)


def test_parts_are_the_protocol_parts(corpora) -> None:
    x, y, who = part_tensors(str(corpora["original"]), ("F001", "SN001"), 0, DISFA_AUS)
    # the first 2 of 4 frames of each of 8 tasks; of each eighth of the 32-frame DISFA video
    assert x.shape == (32, 1, 32, 32) and y.shape == (32, 5)
    # standardized per image: zero mean, unit variance
    assert torch.allclose(x.mean(dim=(2, 3)), torch.zeros(32, 1), atol=1e-4)
    assert torch.allclose(x.std(dim=(2, 3)), torch.ones(32, 1), atol=1e-3)
    assert (who == "F001").sum() == 16 and (who == "SN001").sum() == 16
    # match_frames: every 2nd train frame of each subject, the same frames as the full set's
    x2, y2, who2 = part_tensors(str(corpora["original"]), ("F001", "SN001"), 0, DISFA_AUS, 2)
    assert x2.shape == (16, 1, 32, 32) and (who2 == "F001").sum() == 8
    assert torch.equal(x2[:8], x[:16:2]) and (y2[:8] == y[:16:2]).all()


def test_several_parts_are_each_subjects_frames_in_file_order(corpora) -> None:
    """subject_frames: whole reads every part: all 32 frames of each subject, in file order;
    count_train_frames counts the same frames."""
    root = str(corpora["original"])
    x, y, who = part_tensors(root, ("F001", "SN001"), ALL_PARTS, DISFA_AUS)
    assert x.shape == (64, 1, 32, 32) and (who == "F001").sum() == 32
    d = read_subject(root, "F001")
    cols = [AUS.index(a) for a in DISFA_AUS]
    assert (y[:32] == d.occurrence[:, cols]).all()
    x_tr, _, _ = part_tensors(root, ("F001",), (TRAIN, VAL), DISFA_AUS)
    parts = frame_parts(d.sequence, d.frame)
    assert torch.equal(x_tr, x[:32][torch.from_numpy(np.flatnonzero(parts != TEST))])
    assert [count_train_frames(root, "F001", p) for p in ((TRAIN,), ALL_PARTS, (TEST,))] == \
        [16, 32, 8]


def test_au_without_positive_training_labels_is_reported(corpora) -> None:
    res = train_job(_job(corpora))
    assert res.aus_without_positives == ["AU24"]  # the fixture never activates AU24
    assert len(res.train_loss) == len(res.val_f1) == 3 and 1 <= res.best_epoch <= 3
    finite = [v for v in res.val_f1 if not math.isnan(v)]
    if finite:  # the kept epoch is the first with the best validation F1
        assert res.val_f1[res.best_epoch - 1] == max(finite)
        assert res.best_epoch - 1 == res.val_f1.index(max(finite))
    assert set(res.tests) == {"F", "M"}
    rows = res.tests["F"]
    assert {r["participant"] for r in rows} == {"F003", "F004"}
    assert all(np.isfinite([r["f1"], r["accuracy"], r["score"]]).all() for r in rows)
    assert all(r["n_frames"] > 0 for r in rows)


def _close(a: JobResult, b: JobResult) -> None:
    assert a.key == b.key and a.best_epoch == b.best_epoch
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-3)
    np.testing.assert_allclose(a.val_f1, b.val_f1, atol=0.02)
    for g in a.tests:
        np.testing.assert_allclose([r["score"] for r in a.tests[g]],
                                   [r["score"] for r in b.tests[g]], atol=0.02)


@pytest.mark.parametrize("precision", ["bf16"])
def test_process_strategy_matches_a_job_run_alone(corpora, precision: str) -> None:
    jobs = [_job(corpora, "a", seed=1, precision=precision),
            _job(corpora, "b", seed=2, precision=precision)]
    got: dict[str, JobResult] = {}
    ProcessStrategy(workers=2).run(jobs, lambda r: got.__setitem__(r.key, r))
    alone = {j.key: train_job(j) for j in jobs}
    seq: dict[str, JobResult] = {}
    SequentialStrategy().run(jobs, lambda r: seq.__setitem__(r.key, r))
    for k in ("a", "b"):
        _close(got[k], alone[k])
        _close(seq[k], alone[k])
    assert got["a"].train_loss != got["b"].train_loss  # seeds matter


def test_auto_strategy() -> None:
    assert make_strategy("auto", 1, 10, device="cpu").name == "sequential"
    assert make_strategy("auto", 2, 1, device="cpu").name == "sequential"
    assert make_strategy("auto", 2, 10, device="cpu").name == "process"
    assert make_strategy("auto", 2, 10, images=POOL_MIN_IMAGES, device="cpu").name == "process"
    assert make_strategy("auto", 2, 10, images=POOL_MIN_IMAGES - 1,
                         device="cpu").name == "sequential"
    assert make_strategy("sequential", 0, 10, device="cpu").name == "sequential"


def test_compiled_training_matches_eager_and_reuses_one_graph(corpora) -> None:
    """Compiled jobs in one process share one module instance (re-initialised per job): each
    must still give the result of its own seed, as eager training does."""
    jobs = [_job(corpora, k, seed=s) for k, s in (("a", 1), ("b", 2))]
    eager = [train_job(j) for j in jobs]
    compiled = [train_job(replace(j, config=replace(j.config, compile=True))) for j in jobs]
    for e, c in zip(eager, compiled, strict=True):
        assert e.best_epoch == c.best_epoch
        np.testing.assert_allclose(e.train_loss, c.train_loss, rtol=0.02)
        for g in e.tests:
            np.testing.assert_allclose([r["score"] for r in e.tests[g]],
                                       [r["score"] for r in c.tests[g]], atol=0.05)
    assert compiled[0].train_loss != compiled[1].train_loss


def test_a_started_pool_is_reused_across_runs(corpora) -> None:
    jobs = [_job(corpora, "a", seed=1), _job(corpora, "b", seed=2)]
    got: dict[str, JobResult] = {}
    strategy = ProcessStrategy(workers=2)
    strategy.start()
    try:
        pool = strategy._pool
        strategy.run(jobs[:1], lambda r: got.__setitem__(r.key, r))
        strategy.run(jobs[1:], lambda r: got.__setitem__(r.key, r))
        assert strategy._pool is pool  # the same workers served both runs
    finally:
        strategy.close()
    assert strategy._pool is None
    for j in jobs:
        _close(got[j.key], train_job(j))


def _changed_copy(corpora, tmp_path: Path) -> Path:
    """A private copy of the original corpus (the fixture is shared)."""
    corpus = tmp_path / "corpus"
    shutil.copytree(corpora["original"], corpus)
    return corpus


def test_a_subject_cache_keeps_what_it_read_and_a_new_one_reads_the_files_anew(
        corpora, tmp_path: Path) -> None:
    corpus = _changed_copy(corpora, tmp_path)
    cache = SubjectCache()
    x1, _, _ = part_tensors(str(corpus), ("F001", "M001"), 0, AUS, cache=cache)
    assert len(cache) == 2
    assert cache.get(corpus, "F001") is cache.get(str(corpus), "F001")  # read once
    write_subject(corpus, make_subject("F001", "bp4d", seed=99))
    x_kept, _, _ = part_tensors(str(corpus), ("F001", "M001"), 0, AUS, cache=cache)
    x_new, _, _ = part_tensors(str(corpus), ("F001", "M001"), 0, AUS, cache=SubjectCache())
    x_disk, _, _ = part_tensors(str(corpus), ("F001", "M001"), 0, AUS)
    assert torch.equal(x_kept, x1) and not torch.equal(x_new, x1)
    assert torch.equal(x_new, x_disk)


@pytest.mark.parametrize("strategy", ["sequential", "process"])
def test_each_run_of_a_strategy_reads_the_corpus_as_it_is_then(corpora, tmp_path: Path,
                                                               strategy: str) -> None:
    """A started strategy (one worker: the same process serves both runs) must not train the
    second run on the subjects its first run read before the files changed."""
    corpus = _changed_copy(corpora, tmp_path)
    job = replace(_job(corpora, "a", seed=1, epochs=1), corpus_dir=str(corpus))
    runner = SequentialStrategy() if strategy == "sequential" else ProcessStrategy(workers=1)
    got: list[JobResult] = []
    runner.start()
    try:
        runner.run([job], got.append)
        before = train_job(job)
        write_subject(corpus, make_subject("F001", "bp4d", seed=99))  # a train subject
        runner.run([job], got.append)
    finally:
        runner.close()
    after = train_job(job)
    assert before.train_loss != after.train_loss  # the change matters to the result
    _close(got[0], before)
    _close(got[1], after)


def test_pos_weight_is_negatives_over_positives_clipped() -> None:
    y = torch.tensor([[1, 0, 0, -1], [0, 0, 0, -1], [0, 1, 0, 1], [0, 1, 0, 0]]
                     + [[0, 0, 0, 0]] * 46, dtype=torch.float32)
    # AU0: 49 negatives / 1 positive -> capped; AU1: 48 / 2 = 24 -> capped; AU2: no positives
    # -> capped (never used); AU3: 47 / 1 -> capped.  A balanced column weighs 1.
    assert pos_weight(y).tolist() == [POS_WEIGHT_MAX] * 4
    y2 = torch.tensor([[1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.float32)
    assert pos_weight(y2).tolist() == [3.0, 1.0, 1.0]  # 3/1; 1/3 -> 1; 2/2


def test_tuned_thresholds_flip_and_balance_change_training_and_are_reported(corpora) -> None:
    """Options of experiments: each changes what a job computes; tuned thresholds are the best
    epoch's, chosen on the validation part, and score the test rows."""
    base = train_job(_job(corpora))
    for opt in ({"class_balance": True}, {"flip": True}):
        other = train_job(_job(corpora, **opt))
        assert other.train_loss != base.train_loss, opt
    x, y, _ = part_tensors(str(corpora["original"]), ("F001", "M001"), 0, AUS)
    xv, yv, _ = part_tensors(str(corpora["original"]), ("F002",), 1, AUS)
    cfg = ClassifierTrainConfig(epochs=3, batch_size=16, lr=3e-3, tune_thresholds=True)
    seen: list[tuple[int, np.ndarray]] = []
    fit = fit_classifier(x, torch.from_numpy(y.astype(np.float32)), xv, yv, len(AUS), cfg, 3,
                         on_epoch=lambda e, m, thr: seen.append((e, thr)))
    assert [e for e, _ in seen] == [1, 2, 3]
    np.testing.assert_array_equal(fit.thresholds, seen[fit.best_epoch - 1][1])
    no_val_pos = (yv == 1).sum(0) == 0
    assert (fit.thresholds[no_val_pos] == 0.5).all()
    fixed = fit_classifier(x, torch.from_numpy(y.astype(np.float32)), xv, yv, len(AUS),
                           replace(cfg, tune_thresholds=False), 3)
    assert (fixed.thresholds == 0.5).all()
