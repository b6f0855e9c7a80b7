"""Train one LeNet-5 job: pre-made tensors, Adam, best-validation-F1 epoch, test predictions.

A :class:`TrainJob` is plain data (picklable) so any strategy in :mod:`deepfn.au.strategies`
can run it in this process or a worker; :func:`train_job` returns a :class:`JobResult` with the
per-epoch history and the per-participant x AU test table of the best epoch (no weights: nothing
downstream needs them).  MLflow is never touched here -- the main process logs.

Speed (hundreds of tiny models on CPU): channels-last tensors, bf16 autocast
(``experiments.precision``), fused Adam, and every subject loaded once per run and process (the
:class:`SubjectCache` its caller passes in).  With ``ClassifierTrainConfig.compile`` the
forward pass *and* the
masked loss are one ``torch.compile`` graph per process and head size (:func:`compiled_loss`):
every later model of the process re-initialises that graph's module in place, so nothing
recompiles.  Same job + same seed -> same result on any strategy and with or without compile,
up to float reduction order (thread count, fused kernels).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepfn.au.config import ClassifierTrainConfig
from deepfn.au.lenet import LeNet5, masked_bce_with_logits
from deepfn.au.metrics import participant_rows, positive_rate, tune_thresholds, validation_f1
from deepfn.au.protocol import PARTS, TEST, TRAIN, VAL, frame_parts
from deepfn.compute.device import Compute
from deepfn.data.corpus import AUS, read_subject
from deepfn.errors import DeepFNError

__all__ = ["ClassifierTrainConfig", "TrainJob", "JobResult", "FitResult", "SubjectTensors",
           "SubjectCache", "read_subject_tensors", "count_train_frames", "part_tensors",
           "predict", "fit_classifier", "train_job", "should_compile", "compiled_loss",
           "warm_up", "pos_weight", "INFER_BATCH", "COMPILE_MIN_IMAGES", "POS_WEIGHT_MAX"]

INFER_BATCH = 1024
# Break-even of compiling in a fresh process with a cold inductor cache (docs/protocol.md):
# ~8 s of compiling against ~1.2e-4 s saved per training image on one thread.
COMPILE_MIN_IMAGES = 60_000
# experiments.class_balance: a positive label weighs negatives / positives of its AU in the
# model's training labels, at most this much (an AU with a handful of positives would otherwise
# dominate the loss).
POS_WEIGHT_MAX = 10.0


def should_compile(images_per_worker: float) -> bool:
    """torch.compile pays once a worker trains more than :data:`COMPILE_MIN_IMAGES` images.

    Compiling costs ~6-8 s per process with a cold inductor cache (~2 s warm,
    ``/tmp/torchinductor_$USER``) and is reused by every later model of the process; see
    docs/protocol.md for the numbers.
    """
    return images_per_worker >= COMPILE_MIN_IMAGES


@dataclass
class _Compiled:
    model: LeNet5  # the one module instance the graph was traced with (re-initialised per job)
    loss: LossFn


@functools.cache
def compiled_loss(n_aus: int, image_size: int, bf16: bool, device: str = "cpu") -> _Compiled:
    """This process's compiled ``masked BCE(LeNet5(x), y)`` for one head size and precision.

    Dynamo guards on the module object, so a new ``LeNet5`` per job would recompile; instead
    :func:`fit_classifier` loads each job's freshly seeded initial weights into this instance.
    Dynamic batch size, so the last, smaller batch of an epoch does not recompile.
    """
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream alone
        compute = Compute(torch.device(device), "bf16" if bf16 else "fp32")
        model = compute.place(LeNet5(n_aus, image_size), channels_last=True)
    return _Compiled(model, torch.compile(_loss_fn(model, compute), dynamic=True))


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _loss_fn(model: LeNet5, compute: Compute) -> LossFn:
    """``(xb, yb, pos_weight) -> masked BCE(model(xb), yb)``, the forward under ``compute``'s
    autocast."""
    def loss(xb: torch.Tensor, yb: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        with compute.autocast():
            logits = model(xb)
        return masked_bce_with_logits(logits, yb, w)

    return loss


def pos_weight(labels: torch.Tensor) -> torch.Tensor:
    """Per AU column ``negatives / positives`` of ``labels`` (N, A) in {-1, 0, 1}, clipped to
    [1, :data:`POS_WEIGHT_MAX`] (float32 (A,)): the class-balanced BCE's positive weight."""
    pos = (labels == 1).sum(0).float()
    neg = (labels == 0).sum(0).float()
    return (neg / pos.clamp(min=1)).clamp(1.0, POS_WEIGHT_MAX)


def warm_up(n_aus: int, image_size: int, bf16: bool, batch_size: int = 64) -> None:
    """Compile (or load from inductor's cache) :func:`compiled_loss` now, forward and backward,
    for a full and a smaller batch -- so a pool's first real job runs at full speed."""
    c = compiled_loss(n_aus, image_size, bf16)
    for b in (batch_size, max(1, batch_size // 2 - 1)):
        x = torch.zeros(b, 1, image_size, image_size).contiguous(
            memory_format=torch.channels_last)
        c.loss(x, torch.zeros(b, n_aus), None).backward()
    c.model.zero_grad(set_to_none=True)


@dataclass(frozen=True)
class TrainJob:
    """One model: train on the ``train_parts`` of ``train`` (the train part by default), select
    on the ``val_parts`` of ``val`` (the val part), test on the test part of each ``tests``
    entry ``(test_group, subjects)`` (:func:`deepfn.au.protocol.model_parts`)."""

    key: str
    corpus_dir: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    tests: tuple[tuple[str, tuple[str, ...]], ...]
    aus: tuple[int, ...]
    seed: int
    config: ClassifierTrainConfig = ClassifierTrainConfig()
    train_parts: tuple[int, ...] = (TRAIN,)
    val_parts: tuple[int, ...] = (VAL,)


@dataclass
class JobResult:
    key: str
    train_loss: list[float]
    val_f1: list[float]
    best_epoch: int  # 1-based
    # test_group -> participant x AU rows (metrics.participant_rows)
    tests: dict[str, list[dict[str, Any]]]
    aus_without_positives: list[str]
    images: int  # images pushed through training (epochs x train frames)
    seconds: float  # wall time of the whole job (data, training, evaluation)


@dataclass(frozen=True)
class SubjectTensors:
    images: torch.Tensor  # uint8 (N, 1, H, W)
    occurrence: np.ndarray  # int8 (N, 12)
    parts: np.ndarray  # int8 (N,) TRAIN / VAL / TEST


def read_subject_tensors(corpus_dir: str | Path, subject: str) -> SubjectTensors:
    """One subject of a corpus as tensors (uint8: 4 KiB a 64x64 frame)."""
    d = read_subject(corpus_dir, subject)
    return SubjectTensors(torch.from_numpy(d.images).unsqueeze(1), d.occurrence,
                          frame_parts(d.sequence, d.frame))


class SubjectCache:
    """Subjects read once each, for as long as the holder keeps this object.

    Whoever trains many jobs makes one: a strategy one per run (and per worker process), a
    tuning objective one per set of validation views.  A new cache reads the files as they are
    now, so no caller has anything global to clear when a corpus changes.
    """

    def __init__(self) -> None:
        self._subjects: dict[tuple[str, str], SubjectTensors] = {}

    def get(self, corpus_dir: str | Path, subject: str) -> SubjectTensors:
        key = (str(corpus_dir), subject)
        if key not in self._subjects:
            self._subjects[key] = read_subject_tensors(corpus_dir, subject)
        return self._subjects[key]

    def __len__(self) -> int:
        return len(self._subjects)


def count_train_frames(corpus_dir: str, subject: str, parts: Sequence[int] = (TRAIN,)) -> int:
    """Frames of a subject in ``parts`` (the train part), reading only its small sequence/frame
    arrays."""
    path = f"{corpus_dir}/{subject}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(np.isin(frame_parts(z["sequence"], z["frame"]), parts).sum())
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DeepFNError(f"{path}: corrupt subject file ({exc.__class__.__name__}); "
                          "delete it and rerun the stage that writes it") from exc


def part_tensors(corpus_dir: str, subjects: Sequence[str], part: int | Sequence[int],
                 aus: Sequence[int], stride: int = 1, *, cache: SubjectCache | None = None
                 ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``(x, labels, participant)`` of one part -- or several, each subject's frames in file
    order -- of some subjects (every ``stride``-th frame), each subject from ``cache`` (None:
    read from disk).

    x float32 (N, 1, H, W) standardized per image (see :func:`standardize`), channels-last;
    labels int8 (N, A) in {-1, 0, 1} for the ``aus`` columns; participant (N,) subject id.
    """
    load = read_subject_tensors if cache is None else cache.get
    cols = [AUS.index(a) for a in aus]
    xs, ys, ps = [], [], []
    wanted = (part,) if isinstance(part, int) else tuple(part)
    for s in subjects:
        t = load(corpus_dir, s)
        sel = np.flatnonzero(np.isin(t.parts, wanted))[::stride]
        if len(sel) == 0:
            names = "/".join(PARTS[p] for p in wanted)
            raise DeepFNError(f"{corpus_dir}/{s}.npz: subject {s} has no {names} frames "
                              "(deepfn.au.protocol.frame_parts); regenerate the corpus")
        xs.append(t.images[torch.from_numpy(sel)])
        ys.append(t.occurrence[sel][:, cols])
        ps.append(np.full(len(sel), s))
    x = standardize(torch.cat(xs).float().div_(255.0))
    return x.contiguous(memory_format=torch.channels_last), np.concatenate(ys), np.concatenate(ps)


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Per-image zero mean / unit variance, (N, 1, H, W) -> same shape.  Per image, so no
    statistic crosses frames or subjects (no leakage); LeNet-5 barely trains on raw [0, 1]
    inputs within the CPU profiles' few hundred Adam steps."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = x.std(dim=(2, 3), keepdim=True)
    return (x - mean) / (std + 1e-6)


def predict(model: LeNet5, x: torch.Tensor, compute: Compute) -> np.ndarray:
    """Sigmoid probabilities (N, A) as numpy, in inference batches on ``x``'s device."""
    model.eval()
    out = []
    with torch.inference_mode(), compute.autocast():
        for i in range(0, len(x), INFER_BATCH):
            out.append(torch.sigmoid(model(x[i:i + INFER_BATCH]).float()))
    model.train()
    return torch.cat(out).cpu().numpy()


@dataclass
class FitResult:
    model: LeNet5  # holding the best epoch's weights (compiled: the process's shared instance,
    #                valid until the next compiled fit of that head size)
    train_loss: list[float]
    val_f1: list[float]
    best_epoch: int  # 1-based
    thresholds: np.ndarray  # (A,) of the best epoch: cfg.threshold, or tuned on validation


EpochHook = Callable[[int, LeNet5, np.ndarray], None]


def fit_classifier(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: np.ndarray,
                   n_aus: int, cfg: ClassifierTrainConfig, seed: int,
                   on_epoch: EpochHook | None = None) -> FitResult:
    """Train LeNet-5 on ``x`` (N, 1, S, S) / ``y`` (N, A) float with -1 = uncoded; keep the
    epoch with the best validation F1 on ``xv`` / ``yv`` (strictly better wins: ties and NaN --
    no validation positives -- keep the earlier epoch).  With ``cfg.class_balance`` the loss
    weighs positives by :func:`pos_weight` of ``y``; with ``cfg.tune_thresholds`` each epoch's
    validation F1 is taken at per-AU thresholds tuned on those validation frames
    (:func:`~deepfn.au.metrics.tune_thresholds`), and the best epoch's are returned.  With
    ``cfg.flip`` each epoch draws, after its batch order, a mirror flag per position from the
    same generator and mirrors those frames left-right.
    ``on_epoch(epoch, model, thresholds)`` is called after each epoch's validation (probes:
    research/au_detectability.py scores every epoch's model).

    The tensors go to ``cfg.device`` once; batches are drawn there by indices from a seeded CPU
    generator (the same data order on every device); the loss is read back once per epoch.
    """
    compute = cfg.compute
    torch.manual_seed(seed)
    gen = compute.generator(seed)
    x, y, xv = x.to(compute.device), y.to(compute.device), xv.to(compute.device)
    w = pos_weight(y) if cfg.class_balance else None
    model = compute.place(LeNet5(n_aus, x.shape[-1]), channels_last=True)
    if cfg.compile:  # the same seeded init, loaded into the process's compiled module
        compiled = compiled_loss(n_aus, x.shape[-1], compute.bf16, cfg.device)
        compiled.model.load_state_dict(model.state_dict())
        model, loss_fn = compiled.model, compiled.loss
    else:
        loss_fn = _loss_fn(model, compute)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                           weight_decay=cfg.weight_decay, fused=True)
    n, bs = len(x), cfg.batch_size
    losses: list[float] = []
    val_f1: list[float] = []
    best_f1, best_epoch, best_state = -math.inf, 0, {}
    fixed = np.full(n_aus, cfg.threshold)
    best_thr = fixed
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen).to(compute.device)
        mirror = (torch.rand(n, generator=gen) < 0.5).to(compute.device) if cfg.flip else None
        total = torch.zeros((), device=compute.device)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            xb = x[idx]
            if mirror is not None:
                xb = torch.where(mirror[i:i + bs, None, None, None], xb.flip(-1), xb)
            loss = loss_fn(xb, y[idx], w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        losses.append(float(total) / n)
        probs = predict(model, xv, compute)
        thr = tune_thresholds(yv, probs, cfg.threshold) if cfg.tune_thresholds else fixed
        f1 = validation_f1(yv, probs, thr)
        val_f1.append(f1)
        if on_epoch is not None:
            on_epoch(epoch, model, thr)
        if best_epoch == 0 or (not math.isnan(f1) and f1 > best_f1):
            best_f1 = -math.inf if math.isnan(f1) else f1
            best_epoch, best_thr = epoch, thr
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return FitResult(model, losses, val_f1, best_epoch, best_thr)


def train_job(job: TrainJob, cache: SubjectCache | None = None) -> JobResult:
    """Load the job's parts (through ``cache``; None: a cache of this job alone),
    :func:`fit_classifier`, and evaluate the best epoch on every test set."""
    t0 = time.perf_counter()
    cfg = job.config
    cache = SubjectCache() if cache is None else cache
    au_names = [f"AU{a:02d}" for a in job.aus]
    x, y_np, _ = part_tensors(job.corpus_dir, job.train, job.train_parts, job.aus,
                              cfg.train_stride, cache=cache)
    xv, yv, _ = part_tensors(job.corpus_dir, job.val, job.val_parts, job.aus, cache=cache)
    no_pos = [au_names[j] for j in np.flatnonzero((y_np == 1).sum(0) == 0)]
    res = fit_classifier(x, torch.from_numpy(y_np.astype(np.float32)), xv, yv, len(job.aus),
                         cfg, job.seed)
    tests: dict[str, list[dict[str, Any]]] = {}
    for test_group, subjects in job.tests:
        xt, yt, pt = part_tensors(job.corpus_dir, subjects, TEST, job.aus, cache=cache)
        probs = predict(res.model, xt.to(cfg.compute.device), cfg.compute)
        tests[test_group] = participant_rows(pt, yt, probs, au_names, res.thresholds,
                                             train_rate=positive_rate(y_np))
    return JobResult(job.key, res.train_loss, res.val_f1, res.best_epoch, tests, no_pos,
                     len(x) * cfg.epochs, time.perf_counter() - t0)
