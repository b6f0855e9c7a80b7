"""K LeNet-5s trained at once: ``torch.func`` stacked weights + ``functional_call`` + ``vmap``.

One LeNet-5 at batch 64 is launch-bound on a GPU; stacking K models of the same shape turns
K small kernels into one (PyTorch's model-ensembling recipe).  Every model keeps what the
one-at-a-time trainer (:func:`deepfn.au.trainer.fit_classifier`) gives it, so results do not
depend on the strategy, up to float reduction order:

* its own init: ``torch.manual_seed(seed)`` then ``LeNet5(...)``, as the trainer does;
* its own data order: a CPU generator seeded with ``seed``, one ``randperm`` per epoch;
* its own train set, batch size, epochs, lr, betas, weight decay and threshold.  Models whose
  epoch has fewer steps (fewer frames, a larger batch) or that have run all their epochs sit
  out: their padded batch rows carry the label -1, which :func:`masked_bce_with_logits`
  ignores (the loss of the real rows is unchanged), and the Adam below leaves a model's weights
  and moments untouched on a step it sits out;
* Adam per model: :class:`_StackedAdam` is ``torch.optim.Adam`` (L2 ``weight_decay`` added to
  the gradient, bias corrections from each model's own step count) on the stacked tensors --
  elementwise, so identical to K separate Adams;
* its own best epoch (validation F1; strictly better wins, NaN never does), weights kept per
  model.

Frames live once on the device in a bank (:class:`FrameBank`): models index into it, so K
models on overlapping subjects do not copy them K times; per step only an index tensor moves.

Two levels: :func:`fit_ensemble` (tensors in, per-model histories and best weights out;
imports torch, numpy and the model modules only, so the GPU check can run it on a bare
machine) and :func:`train_jobs` (``TrainJob``s in, the trainer's ``JobResult``s out: the
drop-in for a strategy; imports the trainer lazily).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from deepfn.au.config import ClassifierTrainConfig
from deepfn.au.lenet import LeNet5, masked_bce_with_logits
from deepfn.au.metrics import tune_thresholds, validation_f1
from deepfn.compute.device import Compute, resolve_compute

if TYPE_CHECKING:
    from deepfn.au.trainer import JobResult, SubjectCache, TrainJob

__all__ = ["ModelSpec", "EnsembleFit", "FrameBank", "fit_ensemble", "predict_ensemble",
           "group_jobs", "train_jobs", "INFER_IMAGES"]

INFER_IMAGES = 32_768  # images per vmapped inference chunk, over all models (1024 a model max)

Params = dict[str, Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """One model of an ensemble: its data (rows of the :class:`FrameBank`) and the job's
    optimisation settings (the fields the one-model trainer reads; ``precision``, ``compile``,
    ``device`` and ``train_stride`` are the ensemble's or the caller's business)."""

    train_rows: Tensor  # int64 (N,) bank rows of the train frames, in the trainer's order
    train_labels: Tensor  # float (N, A) in {-1, 0, 1}
    val_rows: Tensor  # int64 (V,)
    val_labels: np.ndarray  # int8 (V, A)
    seed: int
    config: ClassifierTrainConfig = ClassifierTrainConfig()
    pos_weight: Tensor | None = None  # (A,) class-balanced BCE (trainer.pos_weight); None = 1


@dataclass
class EnsembleFit:
    train_loss: list[list[float]]  # per model, per epoch
    val_f1: list[list[float]]
    best_epoch: list[int]  # 1-based
    thresholds: list[np.ndarray]  # per model (A,): its best epoch's
    params: Params  # stacked (K, ...) weights of each model's best epoch
    base: LeNet5  # the module skeleton (on the meta device) the weights plug into


class FrameBank:
    """Frames shared by the models of an ensemble, uploaded once: ``add`` pieces, then
    ``tensor`` (one (F, 1, S, S) float tensor on the device)."""

    def __init__(self) -> None:
        self._pieces: list[Tensor] = []
        self._keys: dict[object, tuple[int, int]] = {}
        self._size = 0
        self._tensor: Tensor | None = None

    def add(self, key: object, x: Tensor) -> Tensor:
        """Rows (int64) of the frames ``x`` (N, 1, S, S) under ``key`` (stored the first time a
        key comes; later ``x`` of the same key are taken to be the same frames)."""
        if key not in self._keys:
            if self._tensor is not None:
                raise RuntimeError("FrameBank.add after FrameBank.tensor")
            if self._pieces and x.shape[1:] != self._pieces[0].shape[1:]:
                raise ValueError(f"{key}: frames {tuple(x.shape[1:])} differ from the bank's "
                                 f"{tuple(self._pieces[0].shape[1:])}; one ensemble needs one "
                                 "image size")
            self._keys[key] = (self._size, len(x))
            self._pieces.append(x.contiguous())
            self._size += len(x)
        start, n = self._keys[key]
        return torch.arange(start, start + n)

    def tensor(self, device: torch.device) -> Tensor:
        if self._tensor is None:
            if not self._pieces:
                raise ValueError("empty FrameBank")
            self._tensor = torch.cat(self._pieces).contiguous().to(device)
            self._pieces = []
        return self._tensor


def _models(n_aus: int, size: int, seeds: Sequence[int]) -> list[LeNet5]:
    """The trainer's init per seed (``manual_seed(seed)``, then the module), caller's RNG kept."""
    out = []
    with torch.random.fork_rng(devices=[]):
        for s in seeds:
            torch.manual_seed(s)
            out.append(LeNet5(n_aus, size))
    return out


def _forward(base: LeNet5) -> Callable[[Params, Tensor], Tensor]:
    return vmap(lambda p, x: functional_call(base, p, (x,)))


class _StackedAdam:
    """``torch.optim.Adam`` (eps 1e-8, L2 weight decay, no amsgrad) on stacked (K, ...) tensors
    with per-model lr / betas / weight decay and per-model step counts: a model that sits out a
    step (``active`` False) keeps its weights, moments and step count."""

    def __init__(self, params: Params, specs: Sequence[ModelSpec], eps: float = 1e-8) -> None:
        p0 = next(iter(params.values()))
        dev = p0.device
        f64 = torch.float64
        self.params = params
        self.lr = torch.tensor([s.config.lr for s in specs], dtype=f64, device=dev)
        self.b1 = torch.tensor([s.config.beta1 for s in specs], dtype=f64, device=dev)
        self.b2 = torch.tensor([s.config.beta2 for s in specs], dtype=f64, device=dev)
        self.wd = torch.tensor([s.config.weight_decay for s in specs], dtype=p0.dtype, device=dev)
        self.any_wd = any(s.config.weight_decay for s in specs)
        self.eps = eps
        self.step_count = torch.zeros(len(specs), dtype=f64, device=dev)
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    @torch.no_grad()
    def step(self, active: Tensor) -> None:
        self.step_count += active
        t = self.step_count.clamp(min=1)
        step_size = (self.lr / (1 - self.b1 ** t)).float()  # (K,)
        bc2_sqrt = (1 - self.b2 ** t).sqrt().float()
        b1, b2 = self.b1.float(), self.b2.float()
        for k, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            shape = (-1,) + (1,) * (p.ndim - 1)
            on = active.view(shape)
            if self.any_wd:
                g = g + self.wd.view(shape) * p
            m, v = self.m[k], self.v[k]
            m.copy_(torch.where(on, torch.lerp(m, g, (1 - b1).view(shape)), m))
            v.copy_(torch.where(on, v * b2.view(shape) + (1 - b2).view(shape) * g * g, v))
            denom = (v.sqrt() / bc2_sqrt.view(shape)).add_(self.eps)
            p.copy_(torch.where(on, p - step_size.view(shape) * m / denom, p))
            p.grad = None


def _epoch_index(specs: Sequence[ModelSpec], gens: Sequence[torch.Generator],
                 epoch: int) -> tuple[Tensor, Tensor]:
    """(steps, K, B) local train-row indices of one epoch, -1 = padding (B = the largest batch),
    and the (steps, K, B) mirror flags of those frames.

    Model k draws ``randperm(N_k)`` from its own generator (if it trains this epoch) and takes
    batches ``perm[i:i + bs_k]`` -- the trainer's batches, the last one partial; with ``flip``
    it then draws the trainer's ``rand(N_k) < 0.5`` mirror flags, by position in the epoch."""
    big_b = max(s.config.batch_size for s in specs)
    blocks: list[tuple[Tensor, Tensor] | None] = []
    steps = 0
    for s, g in zip(specs, gens, strict=True):
        if epoch > s.config.epochs:
            blocks.append(None)
            continue
        n, bs = len(s.train_rows), s.config.batch_size
        k_steps = math.ceil(n / bs)
        perm = torch.randperm(n, generator=g)
        block = torch.full((k_steps * bs,), -1, dtype=torch.int64)
        block[:n] = perm
        mirror = torch.zeros(k_steps * bs, dtype=torch.bool)
        if s.config.flip:
            mirror[:n] = torch.rand(n, generator=g) < 0.5
        blocks.append((block.view(k_steps, bs), mirror.view(k_steps, bs)))
        steps = max(steps, k_steps)
    idx = torch.full((steps, len(specs), big_b), -1, dtype=torch.int64)
    flips = torch.zeros((steps, len(specs), big_b), dtype=torch.bool)
    for k, maybe in enumerate(blocks):
        if maybe is not None:
            block, mirror = maybe
            idx[:block.shape[0], k, :block.shape[1]] = block
            flips[:block.shape[0], k, :block.shape[1]] = mirror
    return idx, flips


def _pad_stack(tensors: Sequence[Tensor], fill: float) -> Tensor:
    n = max(len(t) for t in tensors)
    out = torch.full((len(tensors), n, *tensors[0].shape[1:]), fill, dtype=tensors[0].dtype)
    for k, t in enumerate(tensors):
        out[k, :len(t)] = t
    return out


def predict_ensemble(params: Params, base: LeNet5, bank: Tensor, rows: Sequence[Tensor],
                     compute: Compute) -> list[np.ndarray]:
    """Sigmoid probabilities of model k on bank rows ``rows[k]`` -> K arrays (N_k, A)."""
    k_models = len(rows)
    lengths = [len(r) for r in rows]
    idx = _pad_stack([r.to(torch.int64) for r in rows], 0).to(bank.device)  # (K, M)
    chunk = max(1, min(1024, INFER_IMAGES // k_models))
    fwd = _forward(base)
    outs = []
    with torch.no_grad(), compute.autocast():
        for i in range(0, idx.shape[1], chunk):
            x = bank[idx[:, i:i + chunk]]  # (K, m, 1, S, S)
            outs.append(torch.sigmoid(fwd(params, x).float()))
    probs = torch.cat(outs, dim=1).cpu().numpy() if outs else np.zeros((k_models, 0, 0))
    return [probs[k, :n] for k, n in enumerate(lengths)]


def fit_ensemble(bank: Tensor, specs: Sequence[ModelSpec], n_aus: int,
                 compute: Compute | None = None) -> EnsembleFit:
    """Train one LeNet-5 per spec at once on ``bank`` (F, 1, S, S), standardized frames already
    on ``compute.device``; keep each model's best validation-F1 epoch (see module docstring)."""
    compute = compute or resolve_compute("cpu", "fp32")
    if not specs:
        raise ValueError("fit_ensemble needs at least one model")
    dev, k_models, size = bank.device, len(specs), bank.shape[-1]
    models = _models(n_aus, size, [s.seed for s in specs])
    params, _ = stack_module_state(models)  # leaves with requires_grad, (K, ...)
    params = {k: v.detach().to(dev).requires_grad_() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    opt = _StackedAdam(params, specs)
    gens = [torch.Generator().manual_seed(s.seed) for s in specs]
    rows = _pad_stack([s.train_rows.to(torch.int64) for s in specs], 0).to(dev)  # (K, Nmax)
    labels = _pad_stack([s.train_labels.float() for s in specs], -1.0).to(dev)  # (K, Nmax, A)
    ar = torch.arange(k_models, device=dev)[:, None]
    n_train = torch.tensor([len(s.train_rows) for s in specs], dtype=torch.float32)

    weighted = {s.pos_weight is None for s in specs}
    if len(weighted) != 1:
        raise ValueError("one ensemble needs every model with or every model without pos_weight; "
                         "split the jobs with group_jobs")
    pos_w = (None if specs[0].pos_weight is None
             else torch.stack([s.pos_weight for s in specs if s.pos_weight is not None]).to(dev))

    def loss_fn(p: Params, x: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
        with compute.autocast():
            logits = functional_call(base, p, (x,))
        return masked_bce_with_logits(logits, y, w)

    batched_loss = vmap(loss_fn)
    any_flip = any(s.config.flip for s in specs)
    losses: list[list[float]] = [[] for _ in specs]
    val_f1: list[list[float]] = [[] for _ in specs]
    best_f1 = [-math.inf] * k_models
    best_epoch = [0] * k_models
    fixed = [np.full(n_aus, s.config.threshold) for s in specs]
    best_thr = list(fixed)
    best = {k: v.detach().clone() for k, v in params.items()}
    for epoch in range(1, max(s.config.epochs for s in specs) + 1):
        idx, flips = _epoch_index(specs, gens, epoch)
        idx, flips = idx.to(dev), flips.to(dev)  # one upload per epoch
        total = torch.zeros(k_models, device=dev)
        for step in range(idx.shape[0]):
            local = idx[step]  # (K, B)
            valid = local >= 0
            local = local.clamp(min=0)
            xb = bank[rows[ar, local]]  # (K, B, 1, S, S)
            if any_flip:
                xb = torch.where(flips[step][..., None, None, None], xb.flip(-1), xb)
            yb = torch.where(valid[..., None], labels[ar, local], -1.0)
            loss = (batched_loss(params, xb, yb) if pos_w is None
                    else batched_loss(params, xb, yb, pos_w))  # (K,)
            loss.sum().backward()  # models are independent: each gets its own gradient
            opt.step(valid.any(1))
            total += loss.detach() * valid.sum(1)
        training = [k for k, s in enumerate(specs) if epoch <= s.config.epochs]
        sel = torch.tensor(training, device=dev)
        sub = {k: v.detach()[sel] for k, v in params.items()}
        probs = predict_ensemble(sub, base, bank, [specs[k].val_rows for k in training], compute)
        total_cpu = (total.cpu() / n_train).tolist()
        improved = []
        for j, k in enumerate(training):
            losses[k].append(total_cpu[k])
            cfg = specs[k].config
            thr = (tune_thresholds(specs[k].val_labels, probs[j], cfg.threshold)
                   if cfg.tune_thresholds else fixed[k])
            f1 = validation_f1(specs[k].val_labels, probs[j], thr)
            val_f1[k].append(f1)
            if best_epoch[k] == 0 or (not math.isnan(f1) and f1 > best_f1[k]):
                best_f1[k] = -math.inf if math.isnan(f1) else f1
                best_epoch[k], best_thr[k] = epoch, thr
                improved.append(k)
        if improved:
            imp = torch.tensor(improved, device=dev)
            with torch.no_grad():
                for name, v in params.items():
                    best[name][imp] = v.detach()[imp]
    return EnsembleFit(losses, val_f1, best_epoch, best_thr, best, base)


# --------------------------------------------------------------------------- jobs (strategy)

def group_jobs(jobs: Sequence[TrainJob], max_models: int = 128) -> list[list[TrainJob]]:
    """Jobs that can share one ensemble -- same number of AUs, precision and class balance (the
    corpus' image size must match too; :func:`train_jobs` checks) -- in chunks of at most
    ``max_models``, in the order given."""
    groups: dict[tuple[int, str, bool], list[TrainJob]] = {}
    for j in jobs:
        groups.setdefault((len(j.aus), j.config.precision, j.config.class_balance),
                          []).append(j)
    return [g[i:i + max_models] for g in groups.values() for i in range(0, len(g), max_models)]


def train_jobs(jobs: Sequence[TrainJob], compute: Compute | None = None, *,
               cache: SubjectCache | None = None) -> list[JobResult]:
    """Train ``jobs`` (one :func:`group_jobs` group) as one ensemble -> one ``JobResult`` per
    job, as :func:`deepfn.au.trainer.train_job` would return it (``seconds``: the ensemble's
    wall time shared equally; ``compile`` is ignored).

    ``compute`` gives the device (default: the CPU); its precision is the jobs' own.
    """
    # the trainer imports the settings (pydantic): only this job-level entry point needs it
    from deepfn.au.metrics import participant_rows, positive_rate
    from deepfn.au.protocol import TEST
    from deepfn.au.trainer import JobResult, SubjectCache, part_tensors, pos_weight

    t0 = time.perf_counter()
    if not jobs:
        return []
    shapes = {(len(j.aus), j.config.precision) for j in jobs}
    if len(shapes) != 1:
        raise ValueError(f"one ensemble needs one AU count and precision, got {sorted(shapes)}; "
                         "split the jobs with group_jobs")
    (n_aus, precision), = shapes
    device = compute.device if compute is not None else torch.device("cpu")
    compute = Compute(device, precision)  # type: ignore[arg-type]
    bank = FrameBank()
    cache = SubjectCache() if cache is None else cache

    def rows_of(job: TrainJob, subjects: Sequence[str], parts: tuple[int, ...],
                stride: int = 1) -> tuple[Tensor, np.ndarray, np.ndarray]:
        rs, ys, ps = [], [], []
        for s in subjects:  # part_tensors per subject = part_tensors of all, concatenated
            x, y, p = part_tensors(job.corpus_dir, [s], parts, job.aus, stride, cache=cache)
            rs.append(bank.add((job.corpus_dir, s, parts, stride), x))
            ys.append(y)
            ps.append(p)
        return torch.cat(rs), np.concatenate(ys), np.concatenate(ps)

    specs, no_pos, tests_rows, train_rates = [], [], [], []
    for j in jobs:
        cfg = j.config
        tr, y, _ = rows_of(j, j.train, j.train_parts, cfg.train_stride)
        vr, yv, _ = rows_of(j, j.val, j.val_parts)
        y_train = torch.from_numpy(y.astype(np.float32))
        specs.append(ModelSpec(tr, y_train, vr, yv, j.seed, cfg,
                               pos_weight(y_train) if cfg.class_balance else None))
        no_pos.append([f"AU{a:02d}" for a in np.asarray(j.aus)[(y == 1).sum(0) == 0]])
        train_rates.append(positive_rate(y))
        tests_rows.append([(g, *rows_of(j, subjects, (TEST,))) for g, subjects in j.tests])
    frames = bank.tensor(compute.device)
    fit = fit_ensemble(frames, specs, n_aus, compute)
    # every (job, test group) at once: concatenate a job's groups, split after
    all_rows = [torch.cat([r for _, r, _, _ in tr]) if tr else torch.zeros(0, dtype=torch.int64)
                for tr in tests_rows]
    probs = predict_ensemble(fit.params, fit.base, frames, all_rows, compute)
    seconds = (time.perf_counter() - t0) / len(jobs)
    out = []
    for k, j in enumerate(jobs):
        au_names = [f"AU{a:02d}" for a in j.aus]
        tests: dict[str, list[dict[str, Any]]] = {}
        start = 0
        for g, r, yt, pt in tests_rows[k]:
            p = probs[k][start:start + len(r)]
            start += len(r)
            tests[g] = participant_rows(pt, yt, p, au_names, fit.thresholds[k],
                                        train_rate=train_rates[k])
        out.append(JobResult(j.key, fit.train_loss[k], fit.val_f1[k], fit.best_epoch[k], tests,
                             no_pos[k], len(specs[k].train_rows) * j.config.epochs, seconds))
    return out
