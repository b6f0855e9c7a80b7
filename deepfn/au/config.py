"""The optimisation settings of one classifier job, free of pydantic.

:class:`ClassifierTrainConfig` is plain data that both trainers read: the one-model loop
(:mod:`deepfn.au.trainer`) and the vectorised ensemble (:mod:`deepfn.au.ensemble`, whose
:class:`~deepfn.au.ensemble.ModelSpec` holds one).  This module imports torch and the compute
helpers only, so the ensemble -- and the GPU check, on a machine without pydantic -- can use it;
:meth:`ClassifierTrainConfig.from_settings` reads an ``experiments`` section without importing
the settings module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from deepfn.compute.device import Compute

if TYPE_CHECKING:
    from deepfn.config.settings import ExperimentsSettings

__all__ = ["ClassifierTrainConfig"]


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """The optimisation settings of a job (from ``experiments``)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    threshold: float = 0.5
    precision: str = "bf16"
    class_balance: bool = False  # BCE pos_weight per AU from the training labels (pos_weight)
    tune_thresholds: bool = False  # per-AU thresholds chosen on the validation part
    flip: bool = False  # mirror a random half of the training frames each epoch
    compile: bool = False  # torch.compile the training forward (trainer.should_compile)
    train_stride: int = 1  # train on every k-th train frame of each subject (match_frames)
    device: str = "cpu"  # a resolved torch device ("cpu", "cuda:0"): deepfn.compute.device

    @classmethod
    def from_settings(cls, exp: ExperimentsSettings, compile: bool = False,
                      device: str = "cpu") -> ClassifierTrainConfig:
        return cls(exp.epochs, exp.batch_size, exp.lr, exp.beta1, exp.beta2, exp.weight_decay,
                   exp.threshold, exp.precision, exp.class_balance,
                   exp.thresholds == "validation", exp.flip, compile, device=device)

    @property
    def compute(self) -> Compute:
        """Where and in which precision this job computes."""
        return Compute(torch.device(self.device), "bf16" if self.precision == "bf16" else "fp32")
