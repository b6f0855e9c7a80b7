"""The AU-bearing facial features (brows, forehead, eyes, cheeks, nose, folds, mouth, chin)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepfn.data.synth.canvas import Canvas, bump, fill, texture, tri

__all__ = ["CY", "Geometry", "span", "lip_top", "paint_features"]

CY = 0.02  # face oval centre y

Geometry = dict[str, torch.Tensor]  # every value (B, 1, 1)


def paint_features(img: torch.Tensor, g: Geometry, cv: Canvas,
                   between: Callable[[], None] | None = None) -> None:
    """Paint every feature in place, skin shading first, then nose, mouth, eyes and brows."""
    _forehead(img, g, cv)
    _cheeks(img, g, cv)
    _lower_face(img, g, cv)
    _nose(img, g, cv)
    if between is not None:  # e.g. a beard, which the lips cover
        between()
    _mouth(img, g, cv)
    _eyes(img, g, cv)
    _brows(img, g, cv)



def span(t: torch.Tensor, lo: float = 0.0, hi: float = 0.0) -> tuple[float, float]:
    """(min + lo, max + hi) of a per-frame parameter: the window every frame of a batch needs."""
    return float(t.min()) + lo, float(t.max()) + hi


def _brow_curve(g: Geometry, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    xi, xo = g["brow_xi"], g["brow_xo"]
    s = ((x - xi) / (xo - xi)).clamp(0, 1)
    yc = g["brow_y"] - g["brow_arch"] * 4 * s * (1 - s) - g["raise_in"] * (1 - s) \
        - g["raise_out"] * s
    return s, yc


def _forehead(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    """Horizontal lines (AU1 centre, AU2 sides, resting), glabellar furrows (AU4, resting)."""
    top = span(g["brow_y"] - g["raise_in"].clamp(min=0) - 0.26)[0]
    w = cv.window(0, 0.46, top, span(g["brow_y"], 0, 0.02)[1])
    _, yb = _brow_curve(g, w.x)
    v = (yb - 0.05 - w.y) / 0.04
    depth = 0.95 * g["au1"] * (1 - (w.x / 0.2).square()).clamp(min=0) \
        + 0.8 * g["au2"] * (1 - ((w.x - 0.3) / 0.15).square()).clamp(min=0) \
        + g["rest_forehead"] * (1 - (w.x / 0.38).square()).clamp(min=0)
    lines = bump(tri(v), 0.24).mul_(bump(v - 1.6, 1.9))
    img[:, w.rows, w.cols].mul_(lines.mul_(depth * (-0.3) * g["contrast"]).add_(1))
    # glabella: vertical furrows between the brows, horizontal one at the nose root
    ey = g["eye_height"]
    w = cv.window(0, 0.09, span(ey - g["brow_height"] - 0.1)[0], span(ey, 0, 0.01)[1])
    f = g["au4"] + 0.8 * g["rest_furrow"]
    yc = ey - g["brow_height"] * 0.55 + 0.03 * g["au4"]
    prof = bump(w.x - 0.03 + 0.008 * g["au4"], 0.014) * bump(w.y - yc, 0.07)
    prof += 0.6 * bump(w.x - 0.055, 0.012) * bump(w.y - yc - 0.01, 0.05)
    root = bump(w.y - ey + 0.015, 0.012) * (1 - (w.x / 0.05).square()).clamp(min=0)
    dark = prof.mul_(f * 0.4).add_(root.mul_(g["au4"] * 0.3)).mul_(g["contrast"])
    img[:, w.rows, w.cols].mul_(1 - dark)


def _cheeks(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    """AU6: raised cheeks, lower-lid bulge + infraorbital crease, crow's feet."""
    es, ey, a6 = g["eye_spacing"], g["eye_height"], g["au6"]
    c = g["contrast"]
    w = cv.window(span(es, -0.2)[0], span(es, 0, 0.22)[1], span(ey)[0], span(ey, 0, 0.3)[1])
    cyk = ey + 0.19 - 0.05 * a6 - 0.02 * g["au12"]
    r = ((w.x - es - 0.02) / 0.12).square() + ((w.y - cyk) / 0.075).square()
    under = bump((w.x - es - 0.03) / 0.1, 1.0) * bump(w.y - cyk - 0.085, 0.04)
    region = img[:, w.rows, w.cols]
    raised = 0.6 * a6 + 0.3 * g["au12"]
    region.mul_(1 + (0.03 + 0.12 * raised) * bump(r, 1.0) - 0.22 * c * raised * under)
    # lower-lid bulge and the crease under it
    t = ((w.x - es) / (g["ew"] * 1.15)).clamp(-1, 1)
    q = 1 - t.square()
    ylid = ey + g["hl"] * q + 0.03 - 0.01 * a6
    crease = bump(w.y - ylid, 0.011) * bump(t - 0.15, 0.75)
    bulge = bump(w.y - ylid + 0.014, 0.012) * q
    region.mul_(1 + a6 * (0.12 * bulge - 0.6 * c * crease))
    # crow's feet: three lines fanning out from the outer eye corner
    ox, oy = es + g["ew"] + 0.012, ey
    dx, dy = w.x - ox, w.y - oy
    along = (dx > 0.0).float() * bump(dx - 0.055, 0.055)
    lines = torch.zeros_like(region)
    for slope in (-0.55, 0.0, 0.6):
        lines += bump(dy - slope * dx, 0.009)
    region.mul_(1 - 0.6 * c * a6 * along * lines)


def _lower_face(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    """Nasolabial folds (AU12/10/6, resting), dimples (AU14), AU15 lines, chin (AU17)."""
    c, ym, mw = g["contrast"], g["ym"], g["mw"]
    y0, y1 = g["tip"] - 0.03 - g["nose_lift"], ym + 0.11
    w = cv.window(0.03, span(mw, 0, 0.12)[1], span(y0)[0], span(y1, 0, 0.01)[1])
    p = ((w.y - y0) / (y1 - y0)).clamp(0, 1)
    x0, x1 = g["nw"] + 0.025, mw + 0.045 + 0.015 * g["au12"]
    xf = x0 + (x1 - x0) * p + (0.035 + 0.02 * g["au12"]) * p * (1 - p) * 4
    env = bump(p - 0.45, 0.6)
    d = w.x - xf
    region = img[:, w.rows, w.cols]
    fold = g["fold"]
    region.mul_(1 - 0.3 * c * fold * env * bump(d, 0.014) + 0.05 * fold * env * bump(d - 0.03,
                                                                                    0.025))
    # mouth-corner neighbourhood: dimples (AU14), marionette lines (AU15)
    cx, cyy = mw, ym - g["corner"]
    w = cv.window(span(mw, -0.02)[0], span(mw, 0, 0.07)[1], span(cyy, -0.06)[0],
                  span(cyy, 0, 0.12)[1])
    dx, dy = w.x - cx, w.y - cyy
    dimple = bump(dx - 0.035 + 10 * dy.square(), 0.016) * bump(dy, 0.04)
    pit = bump(dx.square() + dy.square(), 0.0008)
    marion = bump(dx - 0.01 - 0.25 * dy, 0.012) * bump(dy - 0.05, 0.05)
    dark = 0.7 * g["au14"] * dimple + 0.25 * g["au14"] * pit + 0.6 * g["au15"] * marion
    img[:, w.rows, w.cols].mul_(1 - c * dark)
    # chin boss (AU17) and the labiomental crease
    yc = ym + g["lt"] + 0.05
    chin = CY + g["face_length"]
    w = cv.window(0, 0.2, span(yc, -0.03)[0], span(chin)[1])
    boss_c = (yc + chin) * 0.5 - 0.02 * g["au17"]
    boss = bump((w.x / 0.13).square() + ((w.y - boss_c) / 0.09).square(), 1.0)
    tex = texture(cv.size)[w.rows, w.cols]
    crease = bump(w.y - yc + 0.025 * g["au17"] + 3 * w.x.square(), 0.014) \
        * (1 - (w.x / 0.14).square()).clamp(min=0)
    shade = (0.18 * g["au17"]) * boss - (1.5 * g["au17"] * c) * boss * (tex - 0.35).clamp(min=0) \
        - (0.12 + 0.7 * g["au17"]) * c * crease
    img[:, w.rows, w.cols].mul_(1 + shade)


def _nose(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    c, ey, nw = g["contrast"], g["eye_height"], g["nw"]
    tip = g["tip"] - g["nose_lift"]
    w = cv.window(0, span(nw, 0, 0.06)[1], span(ey)[0], span(tip, 0, 0.06)[1])
    prog = ((w.y - ey) / (tip - ey)).clamp(0, 1)
    xb = 0.03 + (nw * 0.75 - 0.03) * prog.square()
    side = bump(w.x - xb, 0.022) * bump(prog - 0.75, 0.8)
    hi = bump(w.x.square() + (w.y - tip + 0.03).square(), 0.0018)
    sx, sy = nw / 0.068, tip + 0.014
    nost = ((w.x - nw * 0.5) / (0.024 * sx)).square() + ((w.y - sy) / 0.011).square()
    alar = ((w.x - nw * 0.8).square() + (w.y - tip + 0.004).square()).sqrt_() - 0.03 * sx
    groove = bump(alar, 0.009) * ((w.y - tip + 0.02) / 0.02).clamp(0, 1)
    under = bump(w.y - tip - 0.03, 0.012) * ((nw * 0.5 - w.x) / 0.02).clamp(0, 1)
    dark = (0.13 * side + 0.3 * groove + 0.15 * under) * c \
        + 0.6 * c * fill((nost - 1).mul_(0.005), cv.inv_px)
    img[:, w.rows, w.cols].mul_((1 + 0.08 * hi) * (1 - dark))


def _lip_curves(g: Geometry, x: torch.Tensor) -> dict[str, torch.Tensor]:
    t = x / g["mw"]
    tt = t.square()
    q = (1 - tt).clamp(min=0)
    sq = q.sqrt()
    line = g["ym"] - g["corner"] * tt - g["lift"] * q
    bow = 1 - 0.3 * bump(t, 0.3)
    return {"t": t, "tt": tt, "sq": sq, "line": line,
            "top": line - g["ut"] * sq * bow - g["u10"] * sq.sqrt(),
            "ub": line - g["open10"] * sq, "bottom": line + g["lt"] * sq}


def lip_top(g: Geometry, x: torch.Tensor) -> torch.Tensor:
    """The upper border of the upper lip at ``x`` (moves with AU10, 12, 15, 17, 23, 24)."""
    return _lip_curves(g, x)["top"]


def _mouth(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    ip, c = cv.inv_px, g["contrast"]
    w = cv.window(0, span(g["mw"], 0, 0.03)[1], span(g["ym"] - g["ut"] - g["u10"], -0.06)[0],
                  span(g["ym"] + g["lt"] + g["lift"].abs(), 0, 0.08)[1])
    k = _lip_curves(g, w.x)
    y, mw = w.y, g["mw"]
    outside = (k["t"].abs() - 1) * mw
    lips = fill(torch.maximum(torch.maximum(k["top"] - y, y - k["bottom"]), outside), ip)
    upper = fill(torch.maximum(torch.maximum(k["top"] - y, y - k["line"]), outside), ip)
    gap = fill(torch.maximum(torch.maximum(k["ub"] - y, y - k["line"]), outside + 0.1 * mw), ip)
    region = img[:, w.rows, w.cols]
    # skin bunching around pressed lips (AU24): pale rims and shadow lines at the borders
    rim = (bump(y - k["top"] + 0.014, 0.012) + bump(y - k["bottom"] - 0.014, 0.012)) * k["sq"]
    edge = (bump(y - k["top"] + 0.035, 0.02) + bump(y - k["bottom"] - 0.035, 0.02)) * k["sq"]
    # lip tightening (AU23): short vertical creases above the upper lip
    creases = bump(tri(w.x / 0.04), 0.25) * bump(y - k["top"] + 0.02, 0.02) * k["sq"]
    region.mul_(1 + g["au24"] * (0.3 * rim - 0.25 * c * edge) - 0.35 * c * g["au23"] * creases)
    lipdark = (0.28 + 0.12 * g["au23"]) * c * g["lip_tone"]
    region.mul_(1 - lipdark * lips - 0.1 * c * upper)
    region.mul_(1 + 0.07 * bump(y - (k["line"] + k["bottom"]) * 0.5, 0.015) * k["sq"])
    teeth = 0.78 - 0.7 * k["tt"]
    region.lerp_(teeth.expand_as(gap), gap)
    line = bump(y - k["line"], 0.011) * ((1.04 - k["t"].abs()) * 12).clamp(0, 1)
    corner = bump((k["t"].abs() - 1.0).square() * 30 + (y - k["line"]).square() * 900, 1.0)
    region.mul_(1 - c * ((0.55 + 0.2 * g["au24"]) * line + (0.3 + 0.3 * g["au14"]) * corner))


def _eyes(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    ip, c = cv.inv_px, g["contrast"]
    es, ey, ew, size = g["eye_spacing"], g["eye_height"], g["ew"], g["eye_size"]
    w = cv.window(span(es - ew, -0.03)[0], span(es + ew, 0, 0.03)[1],
                  span(ey - 0.1 * size)[0], span(ey + g["hl"], 0, 0.03)[1])
    x, y = w.x, w.y
    t = (x - es) / ew
    q = (1 - t.square()).clamp(min=0)
    sq = q.sqrt()
    tilt = -0.012 * t
    yu = ey + tilt - g["hu"] * (0.4 * q + 0.6 * sq)
    yl = ey + tilt + g["hl"] * torch.lerp(q, sq.sqrt(), g["lid_flat"])
    outside = (t.abs() - 1) * ew
    eye = fill(torch.maximum(torch.maximum(yu - y, y - yl), outside), ip)
    region = img[:, w.rows, w.cols]
    # eyelid crease and socket shading (stay put when the lids move)
    tc = ((x - es) / (ew * 1.1)).clamp(-1, 1)
    qc = (1 - tc.square()).sqrt()
    ycr = ey - 0.012 * tc - (0.046 * size + 0.022) * qc
    region.mul_(1 - c * (0.22 * bump(y - ycr, 0.009) * qc
                         + 0.1 * bump((x - es + 0.03) / 0.09, 1.0) * bump(y - ey + 0.02, 0.07)))
    sclera = 0.74 + 0.1 * g["albedo"]
    region.lerp_(sclera.expand_as(eye), eye)
    ri = 0.034 * size
    iy = ey + 0.015 * g["n_gaze"] - 0.004
    d2 = (x - es).square() + (y - iy).square()
    iris = fill((d2 - ri.square()).div_(2 * ri), ip).mul_(eye)
    region.lerp_(g["iris_tone"].expand_as(iris), iris)
    pupil = fill((d2 - (0.42 * ri).square()).div_(0.84 * ri), ip).mul_(eye)
    region.lerp_(torch.full_like(pupil, 0.03), pupil)
    region.mul_(1 - 0.35 * bump(y - yu, 0.02) * eye)  # lid shadow
    lash = bump(y - yu + 0.003, 0.007 + 0.005 * (t + 1).clamp(0, 2) / 2) \
        * ((1.08 - t.abs()) * 10).clamp(0, 1)
    region.lerp_(torch.full_like(lash, 0.05), lash.mul_(0.9))
    low = bump(y - yl - 0.004, 0.007) * sq
    region.mul_(1 - 0.3 * c * low)


def _brows(img: torch.Tensor, g: Geometry, cv: Canvas) -> None:
    xi, xo, bt = g["brow_xi"], g["brow_xo"], g["brow_thickness"]
    hi = g["raise_in"].abs() + g["raise_out"].abs() + bt + g["brow_arch"]
    w = cv.window(span(xi, -0.01)[0], span(xo, 0, 0.01)[1], span(g["brow_y"] - hi)[0],
                  span(g["brow_y"] + hi)[1])
    s, yc = _brow_curve(g, w.x)
    th = bt * (1.15 - 0.6 * s)
    sdf = torch.maximum((w.y - yc).abs_() - 0.5 * th, torch.maximum(xi - w.x, w.x - xo))
    a = fill(sdf, cv.inv_px)
    a.mul_((s * 6 + 0.35).clamp(max=1) * 0.92 * (0.8 + 0.4 * texture(cv.size)[w.rows, w.cols]))
    img[:, w.rows, w.cols].lerp_(g["brow_tone"].expand_as(a), a.clamp_(max=1))
