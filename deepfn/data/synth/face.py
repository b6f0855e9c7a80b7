"""Per-frame geometry (identity, idiosyncrasies, AUs) and the half-face painter (head, hair)."""

from __future__ import annotations

import torch

from deepfn.data.corpus import AUS
from deepfn.data.synth.canvas import Canvas, backdrop, bump, fill, texture, tri
from deepfn.data.synth.features import CY, Geometry, lip_top, paint_features, span

__all__ = ["CY", "derive", "paint_half"]


def derive(identity: dict[str, torch.Tensor], aus: torch.Tensor,
           nuisance: dict[str, torch.Tensor]) -> Geometry:
    """Per-frame geometry: identity + resting idiosyncrasies + AU deformations (all (B,1,1))."""
    a = (aus.float() / 5.0).clamp(0.0, 1.0).pow(0.8)  # intensity 1 -> 0.28, 3 -> 0.66, 5 -> 1
    A = {au: a[:, i].reshape(-1, 1, 1) for i, au in enumerate(AUS)}
    g: Geometry = {k: v.float().reshape(-1, 1, 1) for k, v in identity.items()}
    g.update({f"n_{k}": v.float().reshape(-1, 1, 1) for k, v in nuisance.items()})
    g.update({f"au{k}": v for k, v in A.items()})
    blink = g["n_blink"].clamp(0.0, 1.0)
    es, size = g["eye_spacing"], g["eye_size"]
    g["ew"] = 0.085 * size
    ap = g["rest_aperture"]
    g["hu"] = 0.046 * size * ap * (1 - 0.42 * A[7] - 0.15 * A[6]) * (1 - 0.92 * blink)
    g["hl"] = 0.03 * size * ap.sqrt() * (1 - 0.65 * A[7] - 0.55 * A[6] - 0.15 * A[12]) \
        * (1 - 0.8 * blink)
    g["lid_flat"] = A[7]
    # brows: AU1 inner raise, AU2 outer raise, AU4 lower + draw together
    g["brow_y"] = g["eye_height"] - g["brow_height"]
    g["brow_xi"] = 0.075 - 0.032 * A[4] + 0.006 * A[1]
    g["brow_xo"] = es + g["ew"] + 0.055
    g["raise_in"] = 0.08 * A[1] + 0.02 * A[2] - 0.05 * A[4] + g["rest_brow"]
    g["raise_out"] = 0.012 * A[1] + 0.08 * A[2] - 0.022 * A[4] + 0.8 * g["rest_brow"]
    # nose and mouth
    g["tip"] = g["eye_height"] + g["nose_length"]
    g["nw"] = g["nose_width"] * (1 + 0.12 * A[10])
    g["nose_lift"] = 0.014 * A[10]
    g["ym"] = g["tip"] + g["philtrum"]
    g["mw"] = g["mouth_width"] * (1 + 0.25 * A[12] - 0.32 * A[23] - 0.1 * A[14] + 0.03 * A[15]
                                  + 0.05 * A[24])
    flat = 1 - 0.85 * A[24]
    g["corner"] = (g["rest_corner"] + 0.09 * A[12] - 0.08 * A[15] + 0.008 * A[14]) * flat
    g["lift"] = 0.05 * A[17] * flat
    g["u10"] = 0.055 * A[10]
    g["open10"] = 0.035 * A[10]
    thick = g["lip_thickness"] * (1 - 0.6 * A[23]) * (1 - 0.8 * A[24]) * (1 - 0.2 * A[12]) \
        * (1 - 0.2 * A[14])
    g["ut"] = 0.032 * thick
    g["lt"] = 0.04 * thick * (1 + 0.3 * A[17])
    g["fold"] = (g["rest_fold"] + 1.1 * A[12] + 1.0 * A[10] + 0.4 * A[6] + 0.15 * A[14]).clamp(
        max=1.6)
    g["skin"] = g["albedo"]
    return g


def paint_half(g: Geometry, cv: Canvas) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the half image (B, S, S/2) in reflectance units and the foreground coverage."""
    b = g["albedo"].shape[0]
    img = g["n_background"] * (1 + 0.15 * backdrop(cv.size))
    bgvis = torch.ones(b, cv.size, cv.half)
    _head(img, bgvis, g, cv)
    paint_features(img, g, cv, between=lambda: _beard(img, g, cv))
    _hairline(img, g, cv)
    _glasses(img, g, cv)
    return img, bgvis.neg_().add_(1.0)


def _face_sdf(g: Geometry, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    fw, fl = g["face_width"], g["face_length"]
    yn = (y - CY) / fl
    lo = yn.clamp(0, 1)
    w = fw * (1 - 0.3 * lo + g["jaw"] * lo.square())
    return (x.square() / w.square() + yn.square() - 1.0).mul_(0.5 * fw)


def _head(img: torch.Tensor, bgvis: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    ip = cv.inv_px
    # shoulders / shirt
    w = cv.window(0, 1, 0.55, 1)
    sdf = (w.x.square() / 1.05**2 + ((w.y - 1.2) / 0.5).square() - 1).mul_(0.3)
    a = fill(sdf.expand(img.shape[0], -1, -1).clone(), ip)
    img[:, w.rows, w.cols].lerp_(g["shirt_tone"].expand_as(a), a)
    bgvis[:, w.rows, w.cols].mul_(1 - a)
    # hair behind the head
    hcy = CY - 0.05
    hh = g["face_length"] + 0.1
    hw = g["face_width"] + 0.07 + 0.05 * g["hair_length"]
    yend = hcy + 0.03 + 0.85 * g["hair_length"]
    w = cv.window(0, span(hw, 0, 0.02)[1], span(hcy - hh, -0.02)[0], span(yend, 0, 0.04)[1])
    yc = ((w.y - hcy) / hh).clamp(max=0)
    sdf = (w.x.square() / hw.square() + yc.square() - 1).mul_(0.5 * hw)
    sdf = torch.maximum(sdf, (w.y - yend) * 0.4)
    a = fill(sdf, ip)
    strands = 1 + 0.12 * (texture(cv.size)[w.rows, w.cols] - 0.5)
    img[:, w.rows, w.cols].lerp_(g["hair_tone"] * strands, a)
    bgvis[:, w.rows, w.cols].mul_(1 - a)
    # ears (hidden by long hair)
    ex = g["face_width"] * 0.97
    ey = g["eye_height"] + 0.1
    rx, ry = 0.055 * g["ear_size"], 0.11 * g["ear_size"]
    w = cv.window(span(ex - rx)[0], span(ex + rx, 0, 0.01)[1], span(ey - ry)[0],
                  span(ey + ry, 0, 0.01)[1])
    e = ((w.x - ex) / rx).square() + ((w.y - ey) / ry).square()
    vis = 1 - ((g["hair_length"] - 0.45) * 4).clamp(0, 1)
    a = fill((e - 1).mul_(0.5 * rx), ip).mul_(vis)
    region = img[:, w.rows, w.cols]
    region.lerp_(g["skin"] * 0.9, a)
    region.mul_(1 - 0.35 * g["contrast"] * a * bump(e.sqrt() - 0.55, 0.3))
    bgvis[:, w.rows, w.cols].mul_(1 - a)
    # neck
    nwid = g["face_width"] * 0.42
    w = cv.window(0, span(nwid, 0, 0.01)[1], 0.1, 1)
    sdf = torch.maximum(w.x - nwid, w.y - 0.76 - 0.08 * (w.x / nwid).square())
    a = fill(sdf, ip)
    shade = 0.7 + 0.2 * ((w.y - CY - g["face_length"] * 0.8) / 0.25).clamp(0, 1)
    img[:, w.rows, w.cols].lerp_(g["skin"] * shade, a)
    bgvis[:, w.rows, w.cols].mul_(1 - a)
    # face oval
    fl = g["face_length"]
    w = cv.window(0, span(g["face_width"] * (1 + g["jaw"] * 0.6), 0, 0.02)[1],
                  span(CY - fl, -0.01)[0], span(CY + fl, 0, 0.01)[1])
    a = fill(_face_sdf(g, w.x, w.y), ip)
    img[:, w.rows, w.cols].lerp_(g["skin"].expand_as(a), a)
    bgvis[:, w.rows, w.cols].mul_(1 - a)


def _beard(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    """Facial hair on the jaw and cheeks, along the chin and above the upper lip.

    The mouth region stays shaved and visible: the lips, their corners (also when AU12 lifts
    them), the dimples, the marionette lines and the chin boss lie inside a clear box-like
    region around the mouth (a chin-strap beard with a moustache), so every mouth AU still
    changes the face.  The clearing is fixed by the rest geometry; the moustache's lower edge
    follows the moving upper lip (AU10 lifts it, AU12/AU23 widen or narrow the mouth), so the
    hair deforms with the face.  The strands are a texture fixed in face coordinates: the same
    pattern in every frame of a person.
    """
    if float(g["beard"].max()) <= 0:
        return
    fl, ym = g["face_length"], g["ym"]
    w = cv.window(0, span(g["face_width"] * (1 + g["jaw"]))[1], span(g["tip"], 0.04)[0],
                  span(CY + fl, 0, 0.01)[1])
    face = fill(_face_sdf(g, w.x, w.y).add_(0.004), cv.inv_px)
    top = ym - 0.01 - 0.6 * (w.x - g["mouth_width"] * 0.8).clamp(min=0)  # not moved by AUs
    chin = fill(top - w.y, cv.inv_px * 0.2)
    y0, y1 = ym - 0.11, CY + fl - 0.035  # the clearing: above lifted corners .. below the boss
    rx, yc, ry = g["mouth_width"] + 0.12, (y0 + y1) * 0.5, (y1 - y0) * 0.5
    clear = (w.x / rx).square().square() + ((w.y - yc) / ry).square().square()
    chin.mul_(clear.sub_(1.0).mul_(4.0).clamp_(0.0, 1.0))
    must = fill(torch.maximum(torch.maximum(g["tip"] + 0.045 - w.y,
                                            w.y - lip_top(g, w.x) + 0.012),
                              w.x - g["mw"] - 0.01), cv.inv_px * 0.5).mul_(0.85)
    tex = texture(cv.size)[w.rows, w.cols]
    a = torch.maximum(chin, must).mul_(face).mul_(g["beard"] * (0.45 + 0.5 * tex))
    img[:, w.rows, w.cols].lerp_(g["hair_tone"].expand_as(a), a.clamp_(max=0.95))


def _hairline(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    fw, fl = g["face_width"], g["face_length"]
    bottom = g["hairline"] + 0.3 + 0.2 * g["fringe"]
    w = cv.window(0, span(fw, 0, 0.02)[1], span(CY - fl, -0.02)[0], span(bottom, 0, 0.03)[1])
    xn = w.x / fw
    hl = g["hairline"] + 0.32 * xn.square() \
        + g["fringe"] * (0.2 * (1 - xn.square() * 1.5).clamp(min=0) + 0.015 * tri(w.x / 0.06))
    a = fill(w.y - hl, cv.inv_px * 0.6).mul_(fill(_face_sdf(g, w.x, w.y), cv.inv_px))
    strands = 1 + 0.12 * (texture(cv.size)[w.rows, w.cols] - 0.5)
    img[:, w.rows, w.cols].lerp_(g["hair_tone"] * strands, a)


def _glasses(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    if float(g["glasses"].max()) <= 0:
        return
    es, ey = g["eye_spacing"], g["eye_height"] - 0.005
    rx, ry = 0.115, 0.085
    w = cv.window(0, span(es + rx, 0, 0.03)[1] + 0.25, span(ey - ry, -0.03)[0],
                  span(ey + ry, 0, 0.02)[1])
    e = (((w.x - es) / rx).square() + ((w.y - ey) / ry).square()).sqrt_()
    ring = fill((e - 1).abs_().mul_(0.1).sub_(0.007), cv.inv_px)
    bridge = fill(torch.maximum((w.y - ey + 0.035).abs() - 0.006, w.x - es + rx * 0.97),
                  cv.inv_px)
    arm = fill(torch.maximum((w.y - ey + 0.03).abs() - 0.006, es + rx * 0.98 - w.x),
               cv.inv_px) * ((g["face_width"] - w.x) / 0.02).clamp(0, 1)
    lens = fill(e.sub_(1).mul_(0.1), cv.inv_px)
    frame = torch.maximum(torch.maximum(ring, bridge), arm).mul_(g["glasses"])
    region = img[:, w.rows, w.cols]
    region.mul_(1 - 0.08 * g["glasses"] * lens)
    region.lerp_(torch.full_like(frame, 0.08), frame)
