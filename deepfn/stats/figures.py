"""The paper's result figures from the summaries in :mod:`deepfn.stats.tables`.

* ``table5_bars.png``  independent and dependent per method and split, mean +/- SE, the paper's
  values as markers
* ``fig4_per_au.png``  person-independent models per AU and method (paper Fig. 4)
* ``fig5_gender.png``, ``fig6_skin.png``, ``fig7_dataset.png``  per train -> test groups
  (paper Figs. 5-7)

Colors are the same everywhere: original data blue, DeepFN orange (as in the paper's Fig. 2
histograms), the person-calibration baselines green (mean) and purple (median); dependent
(within-group) bars are hatched.  Every method with runs gets its bars (``methods_in``).  Every
bar carries its n; a cell without data shows "n/a".  Uses ``matplotlib.figure.Figure`` (no
pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from deepfn.stats.tables import (
    EVALUATIONS,
    METHOD_LABELS,
    SPLIT_LABELS,
    SPLITS,
    condition_of,
    group_label,
)

__all__ = ["ORIGINAL_COLOR", "DEEPFN_COLOR", "COMBINATION_FIGURES", "fig_table5", "fig_per_au",
           "fig_combinations", "write_figures"]

ORIGINAL_COLOR = "#4C72B0"
DEEPFN_COLOR = "#DD8452"
_COLOR = {"original": ORIGINAL_COLOR, "deepfn": DEEPFN_COLOR, "person_mean": "#55A868",
          "person_median": "#8172B3"}
COMBINATION_FIGURES = {"gender": "fig5_gender.png", "skin": "fig6_skin.png",
                       "dataset": "fig7_dataset.png"}
_DPI = 150


def _patch(color: str, label: str, hatch: str = "") -> Patch:
    """A legend entry drawn like the bars (legends never depend on which bars have data)."""
    return Patch(facecolor=color, edgecolor="white", hatch=hatch, label=label)


def _norm_patches(methods: list[str]) -> list[Artist]:
    return [_patch(_COLOR[m], METHOD_LABELS[m]) for m in methods]


def _methods(df: pd.DataFrame, column: str = "normalization") -> list[str]:
    """original and DeepFN always, then each method with rows in ``df`` (report order)."""
    present = set(df[column]) if column in df else set()
    return [m for m in _COLOR if m in ("original", "deepfn") or m in present]


def _bars(ax: Axes, x: np.ndarray, means: pd.Series, ses: pd.Series, ns: pd.Series,
          *, color: str, width: float, hatch: str = "") -> None:
    """Bars with SE whiskers, n written inside each bar, "n/a" where there is no mean."""
    mean = np.asarray(means, dtype=float)
    se = np.nan_to_num(np.asarray(ses, dtype=float))
    ok = np.isfinite(mean)
    ax.bar(x[ok], mean[ok], width, yerr=se[ok], color=color, hatch=hatch,
           edgecolor="white", linewidth=0.6, capsize=3, error_kw={"elinewidth": 1})
    box = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    for xi, m, n in zip(x, mean, np.asarray(ns), strict=True):
        ax.text(xi, 1.5, f"n={int(n)}" if np.isfinite(m) else "n/a", rotation=90, ha="center",
                va="bottom", fontsize=7, color="0.15", bbox=box if np.isfinite(m) else None)


def _finish(fig: Figure, ax: Axes, top: float, n_groups: int, path: Path) -> None:
    ax.set_ylim(0, max(80.0, np.ceil(top / 10.0) * 10.0 + 10.0))
    ax.set_xlim(-0.6, max(n_groups, 1) - 0.4)
    ax.set_ylabel("score (%): mean of F1 and accuracy")
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight")


def _top(df: pd.DataFrame, mean: str = "mean", se: str = "se") -> float:
    vals = (df[mean] + df[se].fillna(0)).to_numpy(dtype=float)
    return float(np.nanmax(vals)) if np.isfinite(vals).any() else 0.0


def fig_table5(cells: pd.DataFrame, path: Path) -> None:
    present = set(cells["condition"])
    methods = [m for m in _COLOR if condition_of(m, "independent") in present]
    conds = [(m, e) for m in methods for e in EVALUATIONS]
    fig = Figure(figsize=(max(10.0, 1.6 * len(conds) + 2), 5.2))
    ax = fig.add_subplot()
    width = 0.84 / max(len(conds), 1)
    x0 = np.arange(len(SPLITS))
    # hollow: the SE whisker stays visible through it
    paper: dict[str, Any] = {"marker": "D", "color": "black", "markerfacecolor": "white",
                             "linestyle": "", "markersize": 5}
    legend: list[Artist] = [Line2D([], [], label="paper (Table 5)", **paper)]
    for k, (m, ev) in enumerate(conds):
        cond = condition_of(m, ev)
        c = cells[cells["condition"] == cond].set_index("split").reindex(list(SPLITS))
        x = x0 + (k - (len(conds) - 1) / 2) * width
        hatch = "//" if ev == "dependent" else ""
        _bars(ax, x, c["mean"], c["se"], c["n_obs"].fillna(0), color=_COLOR[m], width=width,
              hatch=hatch)
        if c["paper"].notna().any():
            ax.plot(x, c["paper"], zorder=3, **paper)
    legend += [*_norm_patches(methods), _patch("0.55", "dependent (hatched)", "//"),
               _patch("0.55", "independent")]
    ax.set_xticks(x0, [SPLIT_LABELS[s] for s in SPLITS])
    ax.set_xlabel("group split")
    ax.set_title("Table 5: mean score ± SE per normalization method, independent | dependent\n"
                 "n = participant observations (run × test participant), printed in each bar",
                 fontsize=11)
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.13),
              ncol=min(len(legend), 8), fontsize=8, frameon=False)
    _finish(fig, ax, max(_top(cells), float(cells["paper"].max())), len(SPLITS), path)


def fig_per_au(per_au: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(10, 4.8))
    ax = fig.add_subplot()
    aus = sorted(per_au["au"].unique())
    methods = _methods(per_au)
    x0 = np.arange(len(aus))
    width = 0.8 / len(methods)
    for k, norm in enumerate(methods):
        s = per_au[per_au["normalization"] == norm].set_index("au").reindex(aus)
        _bars(ax, x0 + (k - (len(methods) - 1) / 2) * width, s["mean"], s["se"],
              s["n"].fillna(0), color=_COLOR[norm], width=width)
    ns = per_au["n"][per_au["n"] > 0]
    n_text = (f"{int(ns.min())}" if ns.min() == ns.max() else f"{int(ns.min())}–{int(ns.max())}"
              ) if len(ns) else "0"
    wide = per_au.pivot(index="au", columns="normalization", values="mean")
    lines = []
    for m in methods[1:]:
        if {"original", m} <= set(wide.columns):
            gain = (wide[m] - wide["original"]).dropna()
            if len(gain):
                lines.append(f"{METHOD_LABELS[m]} − original: {gain.mean():+.1f} points on "
                             f"average over {len(gain)} AUs (SD "
                             f"{gain.std(ddof=1) if len(gain) > 1 else 0:.1f})")
    if lines:
        ax.text(0.01, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xticks(x0, aus)
    ax.set_xlabel("action unit")
    ax.set_title("Fig. 4: person-independent models per AU, mean ± SE\n"
                 f"n = runs (run-level test/AUxx/score), {n_text} per bar", fontsize=11)
    ax.legend(handles=_norm_patches(methods), loc="upper center", bbox_to_anchor=(0.5, -0.13),
              fontsize=9, frameon=False, ncol=len(methods))
    if not aus:
        ax.text(0.5, 0.5, "n/a: no person-independent runs", transform=ax.transAxes,
                ha="center")
    _finish(fig, ax, _top(per_au) + 5, len(aus), path)


def fig_combinations(combos: pd.DataFrame, split: str, path: Path) -> None:
    s = combos[combos["split"] == split]
    pairs = list(dict.fromkeys(zip(s["train_group"], s["test_group"], strict=True)))
    methods = _methods(s)
    fig = Figure(figsize=(max(6.0, (0.8 * len(methods)) * len(pairs) + 2), 4.8))
    ax = fig.add_subplot()
    x0 = np.arange(len(pairs))
    width = 0.8 / len(methods)
    evaluation = s.drop_duplicates(["train_group", "test_group"]).set_index(
        ["train_group", "test_group"])["evaluation"]
    within = np.array([evaluation.get(p) == "dependent" for p in pairs], dtype=bool)
    for k, norm in enumerate(methods):
        c = s[s["normalization"] == norm].set_index(["train_group", "test_group"]).reindex(pairs)
        for mask, hatch in ((within, "//"), (~within, "")):  # within-group bars hatched
            _bars(ax, (x0 + (k - (len(methods) - 1) / 2) * width)[mask], c["mean"][mask],
                  c["se"][mask],
                  c["n_obs"].fillna(0)[mask], color=_COLOR[norm], width=width, hatch=hatch)
    ax.set_xticks(x0, [f"{group_label(a)} → {group_label(b)}\n({evaluation.get((a, b), '')})"
                       for a, b in pairs])
    ax.set_xlabel("train group → test group")
    name = SPLIT_LABELS[split]
    ax.set_title(f"{name} split: score per train → test combination, mean ± SE\n"
                 "n = participant observations (run × test participant), printed in each bar",
                 fontsize=11)
    ax.legend(handles=[*_norm_patches(methods),
                       _patch("0.55", "within group (dependent)", "//")],
              loc="upper right", fontsize=9, frameon=False)
    if not pairs:
        ax.text(0.5, 0.5, f"n/a: no {split} runs", transform=ax.transAxes, ha="center")
    _finish(fig, ax, _top(s) + 8, len(pairs), path)


def write_figures(out: Path, cells: pd.DataFrame, per_au: pd.DataFrame,
                  combos: pd.DataFrame) -> list[Path]:
    """All five PNGs under ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "table5_bars.png", out / "fig4_per_au.png"]
    fig_table5(cells, paths[0])
    fig_per_au(per_au, paths[1])
    for split, name in COMBINATION_FIGURES.items():
        paths.append(out / name)
        fig_combinations(combos, split, paths[-1])
    return paths

