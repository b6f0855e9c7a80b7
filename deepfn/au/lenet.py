"""LeNet-5 AU classifier (paper §3.3, Table 3) and its masked multi-label loss.

At 64x64 with 12 AUs the network has exactly 388,564 parameters (387,969 with the 5 DISFA AUs),
the paper's "388K"::

    input (B, 1, 64, 64)
    conv1  6@3x3 + ReLU   -> (B, 6, 62, 62)     60 params
    pool1  avg 2          -> (B, 6, 31, 31)
    conv2 16@3x3 + ReLU   -> (B, 16, 29, 29)   880
    pool2  avg 2          -> (B, 16, 14, 14)
    flatten               -> (B, 3136)
    fc1   120 + ReLU                        376,440
    fc2    84 + ReLU                         10,164
    fc3   n_aus (logits; sigmoid at inference) 1,020

The last layer returns logits: training uses ``BCEWithLogits`` (numerically stable), inference
applies the sigmoid (:func:`deepfn.au.trainer.predict`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LeNet5", "flat_features", "count_parameters", "masked_bce_with_logits"]


def flat_features(image_size: int) -> int:
    """Length of the flattened feature map after conv/pool/conv/pool (3136 at 64x64)."""
    side = ((image_size - 2) // 2 - 2) // 2
    if side < 1:
        raise ValueError(f"image_size must be >= 10 for LeNet-5, got {image_size}")
    return 16 * side * side


class LeNet5(nn.Module):
    """Table 3 LeNet-5: ``(B, 1, S, S)`` float in [0, 1] -> ``(B, n_aus)`` logits."""

    def __init__(self, n_aus: int = 12, image_size: int = 64) -> None:
        super().__init__()
        self.n_aus = n_aus
        self.image_size = image_size
        self.conv1 = nn.Conv2d(1, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=3)
        self.fc1 = nn.Linear(flat_features(image_size), 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_aus)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.image_size:
            raise ValueError(f"expected (B, 1, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 31, 31) at 64x64
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 14, 14)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        logits: torch.Tensor = self.fc3(x)
        return logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def masked_bce_with_logits(logits: torch.Tensor, labels: torch.Tensor,
                           pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy over the coded entries only.

    ``logits`` (B, A) float; ``labels`` (B, A) with 0/1 = coded and -1 = not coded (ignored:
    it contributes neither to the loss nor to the denominator).  All entries uncoded -> 0.
    ``pos_weight`` (A,): the weight of a positive label per AU (class balance; None = 1).
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ")
    mask = labels >= 0
    target = labels.clamp(min=0).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none",
                                              pos_weight=pos_weight)
    return (loss * mask).sum() / mask.sum().clamp(min=1)
