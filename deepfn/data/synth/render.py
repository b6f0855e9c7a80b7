"""Vectorized face renderer: half-face canvas -> pose and light fields -> resample -> camera."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from deepfn.data.synth.canvas import canvas, noise_bank
from deepfn.data.synth.face import CY, derive, paint_half
from deepfn.data.synth.params import check_batch
from deepfn.errors import DeepFNError

__all__ = ["render_faces", "render_float", "CHUNK"]

CHUNK = 32  # frames per worker task: big enough to amortize per-op overhead, cache-friendly
VIEW = 0.7  # the output image spans [-VIEW, VIEW] canonical units (before pose)
EXTENT = 0.76  # the painted canvas spans [-EXTENT, EXTENT]: margin for pose jitter
VIEW_CY = -0.02  # canonical y at the image centre


def render_faces(identity: dict[str, torch.Tensor], aus: torch.Tensor,
                 nuisance: dict[str, torch.Tensor], size: int = 128) -> torch.Tensor:
    """Render a batch of grayscale faces.

    ``identity``: the :data:`~deepfn.data.synth.params.IDENTITY_PARAMS`, each (B,);
    ``aus``: (B, 12) intensities 0..5 (float) in ``corpus.AUS`` order;
    ``nuisance``: the :data:`~deepfn.data.synth.params.NUISANCE_PARAMS`, each (B,).
    Returns (B, size, size) uint8.  The same inputs give the same bytes; a frame rendered in a
    batch of a different size may differ by one gray level in rare pixels (vectorized math).

    Chunks of :data:`CHUNK` frames are rendered by one worker thread per core, each with
    single-threaded torch ops (robust on shared machines); the previous torch thread count is
    restored afterwards.
    """
    n = check_batch(identity, aus, nuisance)
    if size < 8:
        raise DeepFNError(f"image size must be >= 8, got {size}")
    out = torch.empty(n, size, size, dtype=torch.uint8)
    chunks = [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]

    def work(sl: slice) -> None:
        with torch.no_grad():
            img = render_float({k: v[sl].float() for k, v in identity.items()}, aus[sl].float(),
                               {k: v[sl].float() for k, v in nuisance.items()}, size)
            out[sl] = img.mul_(255.0).round_().to(torch.uint8)

    workers = min(len(chunks), _cores(), 8)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, chunks))
        else:
            for sl in chunks:
                work(sl)
    finally:
        torch.set_num_threads(old)
    return out


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def render_float(identity: dict[str, torch.Tensor], aus: torch.Tensor,
                 nuisance: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """One chunk as float in [0, 1] (before quantization)."""
    csize = 2 * round(size * EXTENT / VIEW / 2)
    cv = canvas(csize, EXTENT, VIEW_CY)
    g = derive(identity, aus, nuisance)
    half, fg = paint_half(g, cv)
    grid, face_light = _fields(g, size)
    # the face is mirror-symmetric before pose and light: the grid samples the half canvas at |x|
    src = torch.stack((half, fg), dim=1)
    both = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    flat = _flat_light(g)
    img = both[:, 0].mul_(face_light.sub_(flat).mul_(both[:, 1]).add_(flat))
    return _camera(img, g, size)


def _col(g: dict[str, torch.Tensor], k: str) -> torch.Tensor:
    return g[f"n_{k}"]


def _light_dir(g: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lx, ly = _col(g, "light_x"), _col(g, "light_y")
    lz = (1 - lx.square() - ly.square()).clamp(min=0.05).sqrt()
    norm = (lx.square() + ly.square() + lz.square()).rsqrt()
    return lx * norm, ly * norm, lz * norm


def _flat_light(g: dict[str, torch.Tensor]) -> torch.Tensor:
    """Light on the (flat, camera-facing) background."""
    amb = _col(g, "ambient")
    return amb + (1 - amb) * _light_dir(g)[2]


def _fields(g: dict[str, torch.Tensor], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampling grid (B, size, size, 2) into the half canvas and the head's Lambert light.

    Pose: scale, translation, roll, and yaw/pitch as depth-dependent shifts (the nose moves
    more than the cheeks: foreshortening).  Light: an ellipsoidal head lit from the camera's
    frame.  Both fields are smooth, so they are computed on a coarse lattice and interpolated.
    """
    lo = max(8, size // 4)
    c = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    c = torch.linspace(float(c[0]), float(c[-1]), lo)
    xo, yo = c.view(1, 1, -1), c.view(1, -1, 1)
    s = _col(g, "scale")
    u = (xo * VIEW - _col(g, "tx")) / s
    v = (yo * VIEW - _col(g, "ty")) / s
    roll = _col(g, "roll")
    cr, sr = roll.cos(), roll.sin()
    xr = cr * u + sr * v
    yr = cr * v - sr * u + VIEW_CY
    xa = xr / (g["face_width"] * 1.08)
    yb = (yr - CY) / (g["face_length"] * 1.12)
    r2 = (xa.square() + yb.square()).clamp_(max=1.0)
    root = (1 - r2).sqrt()
    mid = (g["eye_height"] + g["tip"]) * 0.5
    z = 0.45 * root + 0.09 * (1 - (xr / 0.1).square()).clamp(min=0) \
        * (1 - ((yr - mid) / (g["tip"] - g["eye_height"] + 0.04)).square()).clamp(min=0)
    yaw, pitch = _col(g, "yaw"), _col(g, "pitch")
    xc = (xr - yaw.sin() * z) / yaw.cos()
    yc = (yr - pitch.sin() * z) / pitch.cos()
    lx, ly, lz = _light_dir(g)
    k, amb = 0.8, _col(g, "ambient")  # k: depth of the head relative to its width
    lam = ((xa * lx + yb * ly + root * k * lz) / (r2 + (1 - r2) * k * k).sqrt()).clamp(min=0)
    light = amb + (1 - amb) * 1.15 * lam
    coarse = torch.stack((xc * (2.0 / EXTENT), (yc - VIEW_CY) / EXTENT, light), dim=1)
    fine = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    grid = torch.empty(fine.shape[0], size, size, 2)
    grid[..., 0] = fine[:, 0].abs_().sub_(1.0)
    grid[..., 1] = fine[:, 1]
    return grid, fine[:, 2]


def _blur(img: torch.Tensor, sigma: torch.Tensor, taps: int = 3) -> torch.Tensor:
    """Separable Gaussian blur with one sigma (px) per image: a depthwise convolution."""
    b, h, w = img.shape
    k = torch.arange(-taps, taps + 1, dtype=torch.float32).view(1, -1)
    wts = torch.exp(-0.5 * (k / sigma.view(-1, 1).clamp(min=0.05)).square())
    wts = (wts / wts.sum(1, keepdim=True)).view(b, 1, 1, -1)
    x = img.unsqueeze(0)
    x = torch.cat((x[..., :1].expand(-1, -1, -1, taps), x, x[..., -1:].expand(-1, -1, -1, taps)),
                  dim=-1)
    x = F.conv2d(x, wts, groups=b)
    x = torch.cat((x[..., :1, :].expand(-1, -1, taps, -1), x,
                   x[..., -1:, :].expand(-1, -1, taps, -1)), dim=-2)
    return F.conv2d(x, wts.view(b, 1, -1, 1), groups=b)[0]


def _camera(img: torch.Tensor, g: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Exposure, uneven illumination, optics blur and sensor noise."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    img.mul_(_col(g, "gain") * (1 + _col(g, "gradient_x") * c.view(1, 1, -1)
                                + _col(g, "gradient_y") * c.view(1, -1, 1)))
    # blur 0..2 -> sigma 0..1.6 px at 128 px (scaled with the image size)
    out = _blur(img, _col(g, "blur").clamp(0, 2) * (0.8 * size / 128))
    bank = noise_bank(size)
    seed = _col(g, "seed").reshape(-1).round().long().abs()
    n = len(bank)
    i1 = seed % n
    i2 = (i1 + 1 + (seed // n) % (n - 1)) % n
    noise = bank[i1].add_(bank[i2]).mul_(0.7071 * _col(g, "noise"))
    return out.add_(noise).clamp_(0.0, 1.0)
