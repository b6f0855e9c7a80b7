"""Contact sheet (people x AUs) and frame strip PNGs for eyeballing the synthetic corpus."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont

from deepfn.data.corpus import AUS, skin_group
from deepfn.data.synth.generate import plan_subject, render_plan
from deepfn.data.synth.render import render_faces
from deepfn.data.synth.roster import roster_metadata

__all__ = ["write_preview", "write_strip", "preview_people"]

_SIZE = 128
_PAD = 4


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow
        return ImageFont.load_default()


def _accessories(meta_row: pd.Series, seed: int) -> set[str]:
    p = plan_subject(meta_row, seed=seed, frames_per_sequence=1).identity
    return {k for k in ("glasses", "beard", "fringe") if p[k] > 0.3}


def preview_people(seed: int) -> list[tuple[str, str]]:
    """One subject per (dataset, gender, skin group) -> [(subject id, row label)]; within a
    group the first subject that shows an accessory not shown yet (glasses, beard, fringe)."""
    ids = [f"{p}{i:03d}" for p in ("F", "M") for i in range(1, 21)] + \
        [f"SN{i:03d}" for i in range(1, 41)]
    meta = roster_metadata(ids, seed=seed)
    out: list[tuple[str, str]] = []
    shown: set[str] = set()
    for dataset in ("bp4d", "disfa"):
        for gender in ("F", "M"):
            for group in ("lighter", "darker"):
                rows = meta[(meta.dataset == dataset) & (meta.gender == gender)
                            & (meta.skin_type.map(skin_group) == group)]
                if not len(rows):
                    continue
                pick = rows.iloc[0]
                for _, r in rows.iloc[:6].iterrows():
                    acc = _accessories(r, seed)
                    if acc - shown:
                        pick, shown = r, shown | acc
                        break
                out.append((pick.subject, f"{pick.subject}\n{dataset} {gender}\n"
                                          f"{group} (type {pick.skin_type})"))
    return out


def _sheet(tiles: np.ndarray, row_labels: list[str], col_labels: list[str], title: str,
           captions: list[list[str]] | None = None) -> Image.Image:
    """Grid of tiles with a title, column and row labels and optional per-tile captions."""
    n_rows, n_cols, h, w = tiles.shape
    left, top, cap = 150, 60, (16 if captions else 0)
    sheet = Image.new("L", (left + n_cols * (w + _PAD), top + n_rows * (h + cap + _PAD)), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 8), title, fill=0, font=_font(18))
    for j, lab in enumerate(col_labels):
        draw.text((left + j * (w + _PAD) + 4, top - 24), lab, fill=0, font=_font(15))
    for i, lab in enumerate(row_labels):
        y = top + i * (h + cap + _PAD)
        draw.multiline_text((6, y + h // 3), lab, fill=0, font=_font(14))
        for j in range(n_cols):
            x = left + j * (w + _PAD)
            if captions:
                draw.text((x + 1, y + 1), captions[i][j], fill=0, font=_font(11))
            sheet.paste(Image.fromarray(tiles[i, j]), (x, y + cap))
    return sheet


def write_preview(path: Path, *, seed: int = 0, identity_strength: float = 1.0) -> Path:
    """Contact sheet: rows = people (BP4D/DISFA x F/M x lighter/darker), columns = neutral then
    each AU alone at intensity 5; each row uses the person's own first-frame pose and light."""
    people = preview_people(seed)
    meta = roster_metadata([p for p, _ in people], seed=seed)
    n_cols = 1 + len(AUS)
    aus = torch.zeros(n_cols, len(AUS))
    aus[torch.arange(1, n_cols), torch.arange(len(AUS))] = 5.0
    tiles = []
    for sid, _ in people:
        plan = plan_subject(cast(pd.Series, meta.loc[sid]), seed=seed,
                            identity_strength=identity_strength, frames_per_sequence=2)
        ident = {k: torch.full((n_cols,), v) for k, v in plan.identity.items()}
        nuis = {k: torch.full((n_cols,), float(v[0])) for k, v in plan.nuisance.items()}
        nuis["blink"].zero_()
        tiles.append(render_faces(ident, aus, nuis, _SIZE).numpy())
    sheet = _sheet(np.stack(tiles), [lab for _, lab in people],
                   ["neutral"] + [f"AU{a:02d}" for a in AUS],
                   f"synthetic FACS corpus: seed {seed}, identity_strength {identity_strength}; "
                   "each AU alone at intensity 5")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def write_strip(path: Path, *, seed: int = 0, n_frames: int = 16) -> Path:
    """``n_frames`` consecutive frames of one task of the first BP4D-like woman (the task with
    the clearest episode: calm at both ends, strongest in between), captioned with the coded
    AU intensities."""
    sid = "F001"
    meta = roster_metadata([sid], seed=seed)
    plan = plan_subject(cast(pd.Series, meta.loc[sid]), seed=seed, frames_per_sequence=n_frames)
    images = render_plan(plan, image_size=_SIZE)
    tasks = list(dict.fromkeys(plan.sequence.tolist()))
    def episode(t: str) -> float:  # a clear onset-apex-offset: calm ends, strong middle
        total = plan.intensity[plan.sequence == t].sum(axis=1)
        return float(total.max() - total[0] - total[-1])

    activity = [episode(t) for t in tasks]
    task = tasks[int(np.argmax(activity))]
    sel = np.flatnonzero(plan.sequence == task)
    n_cols = min(8, len(sel))
    n_rows = -(-len(sel) // n_cols)
    tiles = np.full((n_rows, n_cols, _SIZE, _SIZE), 255, dtype=np.uint8)
    captions = [[""] * n_cols for _ in range(n_rows)]
    for k, i in enumerate(sel):
        tiles[k // n_cols, k % n_cols] = images[i]
        lev = np.clip(np.floor(plan.intensity[i] + 0.5), 0, 5).astype(int)
        captions[k // n_cols][k % n_cols] = "  ".join(
            f"{a}:{v}" for a, v in zip(AUS, lev, strict=True) if v >= 1) or "neutral"
    sheet = _sheet(tiles, [f"{sid} {task}\nframes\n{r * n_cols}-{r * n_cols + n_cols - 1}"
                           for r in range(n_rows)], [""] * n_cols,
                   f"{sid}, task {task}: {len(sel)} consecutive frames (seed {seed}); "
                   "captions: AU:coded intensity", captions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
