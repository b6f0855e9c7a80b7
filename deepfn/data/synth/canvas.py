"""Half-face canvas, windows, anti-aliased fills and the cached noise/texture banks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["Canvas", "canvas", "fill", "bump", "tri", "noise_bank", "texture", "backdrop"]


@dataclass(frozen=True)
class Window:
    """A rectangle of the half canvas and its canonical coordinates (broadcastable)."""

    rows: slice
    cols: slice
    x: torch.Tensor  # (1, 1, w)
    y: torch.Tensor  # (1, h, 1)


class Canvas:
    """Coordinates of the right half (x >= 0) of a ``size`` x ``size`` canonical face image.

    The canvas spans [-extent, extent] in x and ``center_y`` +- extent in y (y grows downwards);
    pixel centres sit at ``((i + 0.5) * 2 / size - 1) * extent``.  ``size`` must be even so
    the halves mirror exactly.
    """

    def __init__(self, size: int, extent: float = 1.0, center_y: float = 0.0) -> None:
        if size % 2:
            raise ValueError(f"canvas size must be even, got {size}")
        self.size = size
        self.half = size // 2
        self.extent = extent
        self.center_y = center_y
        self.px = 2.0 * extent / size
        self.inv_px = 1.0 / self.px
        self.xs = (torch.arange(self.half, dtype=torch.float32) + 0.5) * self.px
        self.ys = (torch.arange(size, dtype=torch.float32) + 0.5) * self.px - extent + center_y

    def window(self, x0: float, x1: float, y0: float, y1: float) -> Window:
        """The pixels whose centres may fall inside ``[x0, x1] x [y0, y1]`` (clipped)."""
        s = self.inv_px
        c0 = min(max(int(math.floor(x0 * s - 0.5)), 0), self.half)
        c1 = min(max(int(math.ceil(x1 * s + 0.5)), c0), self.half)
        e = self.extent - self.center_y
        r0 = min(max(int(math.floor((y0 + e) * s - 0.5)), 0), self.size)
        r1 = min(max(int(math.ceil((y1 + e) * s + 0.5)), r0), self.size)
        return Window(slice(r0, r1), slice(c0, c1),
                      self.xs[c0:c1].view(1, 1, -1), self.ys[r0:r1].view(1, -1, 1))


@lru_cache(maxsize=8)
def canvas(size: int, extent: float = 1.0, center_y: float = 0.0) -> Canvas:
    return Canvas(size, extent, center_y)


def fill(sdf: torch.Tensor, inv_px: float) -> torch.Tensor:
    """Anti-aliased coverage of ``sdf < 0``: a linear ramp one pixel wide (in place)."""
    return sdf.mul_(-inv_px).add_(0.5).clamp_(0.0, 1.0)


def bump(d: torch.Tensor, width: float | torch.Tensor) -> torch.Tensor:
    """Smooth compact bump: 1 at ``d = 0``, 0 for ``|d| >= width`` ((1 - u^2)^2)."""
    u = (d / width).square_().neg_().add_(1.0).clamp_(min=0.0)
    return u.square_()


def tri(v: torch.Tensor) -> torch.Tensor:
    """Distance of ``v`` to the nearest integer (0 .. 0.5): periodic lines without sin/cos."""
    return (v - torch.round(v)).abs_()


@lru_cache(maxsize=4)
def noise_bank(size: int, n: int = 61) -> torch.Tensor:
    """``n`` fixed unit-variance noise fields (n, size, size); frames pick pairs by seed."""
    g = torch.Generator().manual_seed(20240531 + size)
    return torch.randn(n, size, size, generator=g)


def _smooth_noise(size: int, seed: int, k: int, passes: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(1, 1, size, size // 2, generator=g)
    for _ in range(passes):
        t = torch.nn.functional.avg_pool2d(t, 2 * k + 1, stride=1, padding=k,
                                           count_include_pad=False)
    t = t[0, 0]
    return ((t - t.min()) / (t.max() - t.min())).contiguous()


@lru_cache(maxsize=4)
def texture(size: int) -> torch.Tensor:
    """A fixed blotchy texture in [0, 1] for the half canvas (hair, stubble, chin dimpling)."""
    return _smooth_noise(size, 7 + size, max(1, size // 64), 1)


@lru_cache(maxsize=4)
def backdrop(size: int) -> torch.Tensor:
    """A fixed smooth texture in [-1, 1] for the background (a wall is never perfectly flat)."""
    return _smooth_noise(size, 11 + size, max(2, size // 16), 3).mul_(2).sub_(1)
