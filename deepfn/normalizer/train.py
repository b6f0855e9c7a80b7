"""The training loop of Eq. 1, with exact resume from atomic checkpoints.

One iteration = a batch of ``batch_size`` template frames y and a batch of ``batch_size`` subject
frames x (sampled with replacement by a seeded ``torch.Generator``), both randomly transformed
(:mod:`~deepfn.normalizer.augment`: x' = affine + warp, x = the same affine, un-warped), encoded
together by the shared E (no batch statistics, so one pass over the concatenation equals two
passes) and decoded by D^y / D^x::

    loss = mean|x - D^x(E(x'))| + mean|y - D^y(E(y'))|          (Eq. 1; template-only: 2nd term)

followed by one Adam step.  ``precision="bf16"`` runs the forward pass under CPU bf16 autocast
with channels_last tensors (2.6x faster than fp32 eager on 2 cores; torch.compile was slower).

A checkpoint (model + optimizer + generator + torch RNG + iteration + per-iteration losses) is
written atomically every ``checkpoint_every`` iterations; :func:`fit_normalizer` started on an
existing one continues where it stopped and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from deepfn.compute.device import Compute
from deepfn.errors import DeepFNError
from deepfn.normalizer.augment import AugmentParams, augment
from deepfn.normalizer.checkpoint import load_work_checkpoint, save_work_checkpoint
from deepfn.normalizer.model import DeepFNAutoencoder, check_images

if TYPE_CHECKING:
    from deepfn.config.settings import NormalizeSettings

__all__ = [
    "NormalizerTrainConfig", "TrainState", "Adam", "l1_loss", "deepfn_loss", "frames_to_tensor",
    "fit_normalizer", "LogCallback",
]

LogCallback = Callable[[int, dict[str, float]], None]
log = logging.getLogger(__name__)
# A CPU run projected past this many seconds warns after its first step (_warn_if_long).
LONG_RUN_SECONDS = 3600.0


@dataclass(frozen=True)
class NormalizerTrainConfig:
    """The optimisation settings of one run (from :class:`NormalizeSettings`)."""

    iterations: int
    batch_size: int = 64
    lr: float = 5.0e-5
    betas: tuple[float, float] = (0.5, 0.999)
    precision: str = "bf16"
    augment: AugmentParams = field(default_factory=AugmentParams)
    checkpoint_every: int = 1000
    log_every: int = 100
    device: str = "cpu"  # a resolved torch device ("cpu", "cuda:0"): deepfn.compute.device

    @classmethod
    def from_settings(cls, normalize: NormalizeSettings, iterations: int | None = None,
                      device: str = "cpu") -> NormalizerTrainConfig:
        return cls(iterations=normalize.iterations if iterations is None else iterations,
                   batch_size=normalize.batch_size, lr=normalize.lr,
                   betas=(normalize.beta1, normalize.beta2), precision=normalize.precision,
                   augment=AugmentParams.from_settings(normalize),
                   checkpoint_every=normalize.checkpoint_every, log_every=normalize.log_every,
                   device=device)

    @property
    def compute(self) -> Compute:
        """Where and in which precision this run computes."""
        return Compute(torch.device(self.device), "bf16" if self.precision == "bf16" else "fp32")


@dataclass
class TrainState:
    """Where a run stands: iteration reached, per-iteration losses, measured speed."""

    iteration: int = 0
    loss_subject: list[float] = field(default_factory=list)
    loss_template: list[float] = field(default_factory=list)
    iterations_per_s: list[tuple[int, float]] = field(default_factory=list)
    resumed_from: int = 0

    def record(self, loss_subject: float, loss_template: float, *, subject: bool) -> None:
        """One more iteration with its losses (``loss_subject`` kept only with a subject)."""
        self.iteration += 1
        self.loss_template.append(loss_template)
        if subject:
            self.loss_subject.append(loss_subject)

    def window(self, end: int, size: int) -> dict[str, float]:
        """Mean losses over iterations (end - size, end]."""
        lo = max(0, end - size)
        out = {"loss_template": float(np.mean(self.loss_template[lo:end]))}
        if self.loss_subject:
            out["loss_subject"] = float(np.mean(self.loss_subject[lo:end]))
        return out


def l1_loss(target: Tensor, pred: Tensor) -> Tensor:
    """mean |target - pred| over all pixels of (B, 1, H, W) batches (one term of Eq. 1)."""
    if target.shape != pred.shape:
        raise ValueError(f"target and prediction shapes differ: {tuple(target.shape)} vs "
                         f"{tuple(pred.shape)}")
    return (target - pred.to(target.dtype)).abs().mean()


def deepfn_loss(x: Tensor, x_hat: Tensor, y: Tensor, y_hat: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 1: ``mean|x - D^x(E(x'))| + mean|y - D^y(E(y'))|`` -> (total, subject, template)."""
    lx, ly = l1_loss(x, x_hat), l1_loss(y, y_hat)
    return lx + ly, lx, ly


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 (N, H, W) frames -> float (N, 1, H, W) in [0, 1]."""
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W), got {frames.dtype} {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).unsqueeze(1).float().div_(255.0)


class Adam:
    """Adam (Kingma & Ba; the same update as ``torch.optim.Adam``, eps 1e-8, no weight decay).

    Hand-written because the first call into any ``torch.optim`` optimizer imports
    ``torch._dynamo`` (1.3-1.5 s): 30 normalize stages would spend ~45 s on it.
    ``state_dict()`` holds only tensors and numbers (``torch.load(weights_only=True)`` safe).
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float],
                 eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.step_count += 1
        step_size = self.lr / (1 - b1 ** self.step_count)
        bc2_sqrt = (1 - b2 ** self.step_count) ** 0.5
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(self.eps), value=-step_size)

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step_count, "exp_avg": list(self.exp_avg),
                "exp_avg_sq": list(self.exp_avg_sq)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        m, v = list(state["exp_avg"]), list(state["exp_avg_sq"])  # type: ignore[call-overload]
        if len(m) != len(self.params) or len(v) != len(self.params):
            raise DeepFNError(f"optimizer state holds {len(m)} tensors, the model has "
                              f"{len(self.params)}; delete the checkpoint to start over")
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, m + v, strict=True):
            dst.copy_(src)
        self.step_count = int(state["step"])  # type: ignore[call-overload]


def _sample(frames: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` frames drawn with replacement; indices from the (CPU) generator, so the draws are
    the same on every device."""
    idx = torch.randint(len(frames), (n,), generator=generator)
    return frames[idx.to(frames.device)]


def _step(model: DeepFNAutoencoder, opt: Adam, template: Tensor,
          subject: Tensor | None, cfg: NormalizerTrainConfig, generator: torch.Generator,
          compute: Compute) -> Tensor:
    """One iteration of Eq. 1 (template batch then subject batch); returns the detached
    ``[l_x, l_y]`` on the device (read back in bulk: no device sync per iteration)."""
    b = cfg.batch_size
    frames = _sample(template, b, generator)                             # y: (B, 1, S, S)
    if subject is not None:
        frames = torch.cat([frames, _sample(subject, b, generator)])     # [y; x]: (2B, 1, S, S)
    inputs, targets = augment(frames, cfg.augment, generator)            # warped, un-warped
    if compute.bf16:
        inputs = inputs.contiguous(memory_format=compute.memory_format)
    with compute.autocast():
        h = model.encode(inputs, n_template=b)
        y_hat = model.decoder_template(h[:b])
        x_hat = model.decoder_subject(h[b:]) if subject is not None else None
    if x_hat is None:                                                    # pretrain: 2nd term
        ly = l1_loss(targets, y_hat)
        loss, lx = ly, torch.zeros((), device=ly.device)
    else:
        loss, lx, ly = deepfn_loss(targets[b:], x_hat, targets[:b], y_hat)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return torch.stack([lx.detach().float(), ly.detach().float()])


def fit_normalizer(model: DeepFNAutoencoder, template: Tensor, subject: Tensor | None,
                   cfg: NormalizerTrainConfig, generator: torch.Generator, *,
                   checkpoint: Path | None = None, key: str = "",
                   on_log: LogCallback | None = None, progress: str | None = None,
                   stop_after: int | None = None) -> TrainState:
    """Train ``model`` in place for ``cfg.iterations`` (resuming from ``checkpoint`` if present).

    Args:
        template: (N_y, 1, S, S) template frames in [0, 1].
        subject: (N_x, 1, S, S) subject frames, or None to train E and D^y alone (pretrain).
        generator: the seeded CPU generator all sampling and augmentation draws from.
        checkpoint: work-dir path written every ``cfg.checkpoint_every`` iterations.
        key: config hash stored in (and required of) the checkpoint.
        on_log: called as ``on_log(iteration, metrics)`` every ``cfg.log_every`` iterations.
        progress: a description to show a rich progress bar with (None: no bar).
        stop_after: stop (as if killed) after this many iterations: for tests.
    """
    _check_inputs(model, template, subject)
    compute = cfg.compute
    compute.place(model)
    template = template.to(compute.device)                  # uploaded once, not per batch
    subject = subject.to(compute.device) if subject is not None else None
    opt = Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    state = TrainState()
    if checkpoint is not None and checkpoint.exists():
        state = _resume(checkpoint, key, model, opt, generator, cfg.iterations)
        _replay_log(state, cfg.log_every, on_log)
    model.train()
    speed = _Speedometer(state.iteration)
    pending: list[Tensor] = []  # losses of iterations not yet read back from the device

    def flush() -> None:
        if pending:
            for lx, ly in torch.stack(pending).tolist():
                state.record(lx, ly, subject=subject is not None)
            pending.clear()

    with _progress(progress, cfg.iterations, state.iteration) as advance:
        it = start = state.iteration
        while it < cfg.iterations:
            if stop_after is not None and it >= stop_after:
                break
            pending.append(_step(model, opt, template, subject, cfg, generator, compute))
            it += 1
            if it == start + 1:  # once, after the first step (state.iteration moves on flush)
                _warn_if_long(compute, speed.elapsed(), cfg.iterations - it)
            logs = it % cfg.log_every == 0 or it == cfg.iterations
            saves = checkpoint is not None and (it % cfg.checkpoint_every == 0
                                                or it == cfg.iterations)
            if logs or saves or (stop_after is not None and it >= stop_after):
                flush()
            if logs:
                state.iterations_per_s.append((it, speed.lap(it)))
                _log(on_log, state, it, state.iterations_per_s[-1][1], cfg.log_every)
            if saves and checkpoint is not None:
                save_work_checkpoint(checkpoint, model=model, optimizer=opt,
                                     generator=generator, state=state, key=key)
            advance(it)
    flush()
    return state


def _check_inputs(model: DeepFNAutoencoder, template: Tensor, subject: Tensor | None) -> None:
    check_images(template, model.cfg.size, "template")
    if subject is not None:
        check_images(subject, model.cfg.size, "subject")


def _resume(checkpoint: Path, key: str, model: DeepFNAutoencoder, opt: Adam,
            generator: torch.Generator, iterations: int) -> TrainState:
    """Load model, optimizer and both RNG states from ``checkpoint``; the state it reached."""
    ck = load_work_checkpoint(checkpoint, model.cfg, key)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    generator.set_state(ck["generator"])
    torch.set_rng_state(ck["torch_rng"])
    device = next(model.parameters()).device
    if device.type == "cuda" and "cuda_rng" in ck:
        torch.cuda.set_rng_state(ck["cuda_rng"], device)
    state = TrainState(iteration=ck["iteration"], loss_subject=list(ck["loss_subject"]),
                       loss_template=list(ck["loss_template"]),
                       iterations_per_s=[(int(i), float(v)) for i, v in ck["iterations_per_s"]],
                       resumed_from=ck["iteration"])
    if state.iteration > iterations:
        raise DeepFNError(f"{checkpoint}: checkpoint is at iteration {state.iteration}, past "
                          f"the {iterations} asked for; delete it to start over")
    return state


def _log(on_log: LogCallback | None, state: TrainState, it: int, speed: float,
         log_every: int) -> None:
    """``on_log(it, {mean losses of the last log_every iterations, iterations_per_s})``."""
    if on_log is not None:
        on_log(it, {**state.window(it, log_every), "iterations_per_s": speed})


def _replay_log(state: TrainState, log_every: int, on_log: LogCallback | None) -> None:
    """Send a resumed run's logged points again, so the new run holds the curves whole."""
    for it, speed in state.iterations_per_s:
        _log(on_log, state, it, speed, log_every)


def _warn_if_long(compute: Compute, step_seconds: float, remaining: int) -> None:
    """After the first step: on a CPU, a run projected past :data:`LONG_RUN_SECONDS` (the paper
    profile: ~2 weeks a subject) says so, with the projection and the fix, before it goes on."""
    projected = step_seconds * remaining
    if compute.is_cuda or projected < LONG_RUN_SECONDS:
        return
    log.warning("normalizer on the CPU: %d more iterations at %.2f s each = %.1f hours for this "
                "subject alone; run it on a GPU (compute.device: auto on a CUDA machine, README "
                "'Run it on a GPU') or lower normalize.iterations", remaining, step_seconds,
                projected / 3600)


class _Speedometer:
    """Iterations per second since the previous :meth:`lap`."""

    def __init__(self, iteration: int) -> None:
        self.t0, self.it0 = time.perf_counter(), iteration

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def lap(self, iteration: int) -> float:
        now = time.perf_counter()
        speed = (iteration - self.it0) / max(now - self.t0, 1e-9)
        self.t0, self.it0 = now, iteration
        return speed


@contextmanager
def _progress(description: str | None, total: int, done: int) -> Iterator[Callable[[int], None]]:
    """A rich bar for ``total`` iterations (none without a description or under 50 to go);
    yields ``advance(iteration)``."""
    if description is None or total - done < 50:
        yield lambda it: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda it: bar.update(task, completed=it)
