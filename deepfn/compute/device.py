"""``compute.device`` + a stage's ``precision`` -> one frozen :class:`Compute`, resolved once.

The few lines every training loop needs to be device-agnostic (after nanoGPT's device block)::

    from deepfn.compute.device import resolve_compute
    compute = resolve_compute(settings.compute.device, settings.experiments.precision)
    compute.configure()                         # cudnn.benchmark + TF32 on CUDA; no-op on CPU
    model = model.to(compute.device, memory_format=compute.memory_format)
    x = x.to(compute.device)                    # once per subject, not per batch
    with compute.autocast():                    # bf16 autocast, or nothing on fp32
        loss = loss_fn(model(x[idx]), y[idx])
    gen = compute.generator(seed)               # a CPU generator: indices are drawn on the CPU,
    idx = torch.randperm(n, generator=gen).to(compute.device)  # the same on every device

RNG state for checkpoints (:func:`rng_state` / :func:`set_rng_state`) holds CPU tensors only, so
a checkpoint written on a GPU loads with ``map_location="cpu"`` and vice versa; the CUDA part is
restored only where a CUDA device is in use.  This module imports torch and nothing of deepfn
but :mod:`deepfn.errors`, so a bare GPU machine (torch + numpy) can import it.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch

from deepfn.errors import DeepFNError

__all__ = ["Compute", "resolve_compute", "resolve_device", "rng_state", "set_rng_state",
           "environment", "DEVICE_PATTERN", "Precision"]

Precision = Literal["bf16", "fp32"]
M = TypeVar("M", bound=torch.nn.Module)
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
_DEVICE = re.compile(DEVICE_PATTERN)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto | cpu | cuda | cuda:N`` -> a torch.device that exists on this machine.

    ``auto`` is CUDA (the current device) when ``torch.cuda.is_available()``, else the CPU.
    Anything else that does not exist here is a one-line :class:`DeepFNError` naming
    ``compute.device`` and the fix.
    """
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise DeepFNError(f"compute.device: {device!r} is not one of auto, cpu, cuda, cuda:N; "
                          "set it in params.yaml (auto picks CUDA when there is one)")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeepFNError(f"compute.device: {device!r} but torch {torch.__version__} sees no CUDA "
                          "device on this machine; set compute.device: cpu (or auto), or install "
                          "a CUDA build of torch on a GPU machine (README: Run it on a GPU)")
    if device == "auto":
        return torch.device("cuda", torch.cuda.current_device())
    index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise DeepFNError(f"compute.device: {device!r} but this machine has {count} CUDA "
                          f"device(s) (cuda:0..cuda:{count - 1}); pick one of those or auto")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class Compute:
    """Where and how a stage computes; build it with :func:`resolve_compute`."""

    device: torch.device
    precision: Precision = "fp32"

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    @property
    def autocast_dtype(self) -> torch.dtype:
        """The dtype the forward pass computes in (parameters stay fp32)."""
        return torch.bfloat16 if self.bf16 else torch.float32

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last: faster convolutions under bf16 on both CPU (oneDNN) and CUDA (cuDNN)."""
        return torch.channels_last

    def autocast(self) -> AbstractContextManager[Any]:
        """A fresh context for one forward pass: bf16 autocast on this device type, or nothing."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def configure(self) -> None:
        """Process-wide switches for this device: on CUDA, cuDNN autotuning and TF32 matmuls and
        convolutions (fp32 layers then run on tensor cores); nothing on the CPU."""
        if self.is_cuda:
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def place(self, module: M, channels_last: bool | None = None) -> M:
        """``module`` moved to this device, channels_last if asked (default: on bf16); in place,
        returned."""
        module.to(self.device)
        if self.bf16 if channels_last is None else channels_last:
            # Module.to(memory_format=) exists at run time; torch's overloads omit it
            module.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        return module

    def generator(self, seed: int) -> torch.Generator:
        """A seeded CPU generator: draw indices with it, then move them (same draws on any
        device, so a seed means the same data order on a laptop and on a GPU)."""
        return torch.Generator().manual_seed(int(seed))

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); no-op on the CPU."""
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def to_dict(self) -> dict[str, str]:
        return {"device": str(self.device), "precision": self.precision}


def resolve_compute(device: str = "auto", precision: str = "fp32") -> Compute:
    """Resolve ``compute.device`` and a stage's ``precision`` once (see :func:`resolve_device`)."""
    if precision not in ("bf16", "fp32"):
        raise DeepFNError(f"precision: {precision!r} must be bf16 or fp32")
    return Compute(resolve_device(device), precision)  # type: ignore[arg-type]


def rng_state(compute: Compute | None = None) -> dict[str, torch.Tensor]:
    """torch's global RNG state -- the CPU's, and on CUDA the device's -- as CPU uint8 tensors
    (safe for ``torch.save`` / ``torch.load(weights_only=True)``)."""
    state = {"cpu": torch.get_rng_state()}
    if compute is not None and compute.is_cuda:
        state["cuda"] = torch.cuda.get_rng_state(compute.device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], compute: Compute | None = None) -> None:
    """Restore :func:`rng_state`.  The CUDA part only where this run is on CUDA: a GPU
    checkpoint resumes on a CPU (CUDA state ignored) and a CPU checkpoint on a GPU (the CUDA
    generator keeps its seeded state)."""
    torch.set_rng_state(state["cpu"].cpu())
    if compute is not None and compute.is_cuda and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), compute.device)


def environment(compute: Compute) -> dict[str, Any]:
    """What a benchmark or a run should record about the machine it ran on."""
    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda,
                           "device": str(compute.device), "threads": torch.get_num_threads()}
    if compute.is_cuda:
        props = torch.cuda.get_device_properties(compute.device)
        env.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count,
                   cudnn=torch.backends.cudnn.version())
    else:
        import platform

        env.update(name=platform.processor() or platform.machine())
    return env
