"""Does normalization remove identity and keep expression?  Probes and Fig.-2-style figures.

Three diagnostics of the ``transfer`` stage, each computed before (the AE corpus, resized to the
classifier resolution) and after normalization (Eq. 2 outputs):

identity leakage
    multinomial logistic regression predicting the subject id from 16x16 pixels; trained and
    tested on disjoint sequences (single-sequence subjects: first vs second half of the frames).
    Should fall toward chance (1 / n_subjects) after normalization.
expression preservation
    per-AU ridge regression of the coded intensity from the same pixels, Pearson r on held-out
    frames (same split), and across subjects (2-fold: even vs odd subjects).  Should not drop.
    ``expression_per_au`` lists each AU's r before/after and the share kept (after / before),
    so a reader sees which AUs survive transfer onto the template;
    :func:`expression_markdown` renders it as ``report.md``.
group averages (paper Fig. 2)
    the average face of each group (female/male, lighter/darker skin, bp4d/disfa) before (middle
    row) and after (bottom row), with luminance histograms of the averages (top: before blue,
    after orange).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from deepfn.data.corpus import AUS, skin_group
from deepfn.normalizer.train import frames_to_tensor

__all__ = [
    "PROBE_SIZE", "GROUPS", "KEPT", "ProbeSet", "downsample", "split_mask", "identity_probe",
    "expression_probe", "per_au_preservation", "expression_markdown", "GroupAverages",
    "fig2_group_averages", "summarize",
]

PROBE_SIZE = 16
KEPT = 0.5  # an AU is "carried" when at least this share of its probe r survives normalization
# (column title, subjects.csv column, predicate) in the order of the paper's Fig. 2
GROUPS: tuple[tuple[str, str, Any], ...] = (
    ("female", "gender", lambda v: v == "F"), ("male", "gender", lambda v: v == "M"),
    ("lighter", "skin_type", lambda v: skin_group(int(v)) == "lighter"),
    ("darker", "skin_type", lambda v: skin_group(int(v)) == "darker"),
    ("bp4d", "dataset", lambda v: v == "bp4d"), ("disfa", "dataset", lambda v: v == "disfa"),
)


def downsample(images: np.ndarray, size: int = PROBE_SIZE) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, size*size) area-averaged pixels in [0, 1]."""
    x = frames_to_tensor(images)
    return F.adaptive_avg_pool2d(x, size).flatten(1).numpy()


def split_mask(sequence: np.ndarray) -> np.ndarray:
    """Boolean train mask of one subject: every other sequence, or the first half of the frames
    when the subject has a single sequence (test frames never neighbour train frames)."""
    seqs = np.unique(sequence)
    if len(seqs) >= 2:
        return np.isin(sequence, seqs[::2])
    mask = np.zeros(len(sequence), dtype=bool)
    mask[: len(sequence) // 2] = True
    return mask


@dataclass
class ProbeSet:
    """Probe features of every subject, accumulated one subject at a time."""

    before: list[np.ndarray] = field(default_factory=list)
    after: list[np.ndarray] = field(default_factory=list)
    subject: list[np.ndarray] = field(default_factory=list)
    intensity: list[np.ndarray] = field(default_factory=list)
    train: list[np.ndarray] = field(default_factory=list)

    def add(self, index: int, before: np.ndarray, after: np.ndarray, intensity: np.ndarray,
            sequence: np.ndarray, max_frames: int = 400) -> None:
        """Add one subject (uint8 frames before/after); at most ``max_frames``, evenly spaced."""
        keep = np.unique(np.linspace(0, len(before) - 1, min(len(before), max_frames)).round()
                         .astype(int))
        self.before.append(downsample(before[keep]))
        self.after.append(downsample(after[keep]))
        self.subject.append(np.full(len(keep), index))
        self.intensity.append(intensity[keep])
        self.train.append(split_mask(sequence)[keep])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(getattr(self, k)) for k in
                ("before", "after", "subject", "intensity", "train")}


def identity_probe(x: np.ndarray, subject: np.ndarray, train: np.ndarray) -> float:
    """Held-out accuracy of a logistic-regression subject classifier on (N, F) features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(subject[train])) < 2 or not (~train).any():
        return float("nan")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    clf.fit(x[train], subject[train])
    return float((clf.predict(x[~train]) == subject[~train]).mean())


def expression_probe(x: np.ndarray, intensity: np.ndarray, train: np.ndarray,
                     alpha: float = 10.0, min_frames: int = 10) -> dict[str, float]:
    """Per-AU Pearson r of a ridge regression of intensity from (N, F) features on held-out
    frames (only coded frames, intensity >= 0); AUs without variance or data are left out."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, float] = {}
    for j, au in enumerate(AUS):
        coded = intensity[:, j] >= 0
        tr, te = coded & train, coded & ~train
        y = intensity[:, j].astype(np.float64)
        if tr.sum() < min_frames or te.sum() < min_frames or y[tr].std() == 0 or y[te].std() == 0:
            continue
        reg = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(x[tr], y[tr])
        pred = reg.predict(x[te])
        out[f"AU{au:02d}"] = float(np.corrcoef(pred, y[te])[0, 1]) if pred.std() > 0 else 0.0
    return out


def summarize(probes: ProbeSet, n_subjects: int) -> dict[str, Any]:
    """Identity and expression probes, before vs after: the ``metrics.json`` numbers."""
    a = probes.arrays()
    cross = (a["subject"] % 2) == 0  # subject-disjoint fold
    out: dict[str, Any] = {
        "identity_accuracy": {"chance": 1.0 / max(n_subjects, 1),
                              "before": identity_probe(a["before"], a["subject"], a["train"]),
                              "after": identity_probe(a["after"], a["subject"], a["train"])},
    }
    for name, mask in (("expression_r", a["train"]), ("expression_r_cross_subject", cross)):
        before = expression_probe(a["before"], a["intensity"], mask)
        after = expression_probe(a["after"], a["intensity"], mask)
        out[name] = {"before": before, "after": after,
                     "mean_before": float(np.mean(list(before.values()))) if before else None,
                     "mean_after": float(np.mean(list(after.values()))) if after else None}
    out["expression_per_au"] = per_au_preservation(out["expression_r"],
                                                   out["expression_r_cross_subject"])
    return out


def _kept(before: float | None, after: float | None) -> float | None:
    """after / before when the AU was readable before (r > 0.05), else None."""
    if before is None or after is None or before <= 0.05:
        return None
    return after / before


def per_au_preservation(within: dict[str, Any], cross: dict[str, Any]) -> dict[str, Any]:
    """Per AU: probe r before/after (held-out frames and subject-disjoint), the share kept
    (after / before) and whether the AU is carried (share >= :data:`KEPT`)."""
    out: dict[str, Any] = {}
    for au in sorted(set(within["before"]) | set(within["after"])):
        b, a = within["before"].get(au), within["after"].get(au)
        kept = _kept(b, a)
        out[au] = {"before": b, "after": a, "kept": kept,
                   "cross_before": cross["before"].get(au), "cross_after": cross["after"].get(au),
                   "carried": None if kept is None else bool(kept >= KEPT)}
    return out


def expression_markdown(metrics: dict[str, Any]) -> str:
    """The normalization report: identity probe and the per-AU expression probe, before/after."""
    def f(v: float | None, signed: bool = False) -> str:
        return "n/a" if v is None or v != v else (f"{v:+.2f}" if signed else f"{v:.2f}")

    ident = metrics["identity_accuracy"]
    per_au = metrics["expression_per_au"]
    verdict = {True: "yes", False: "**no**", None: "n/a"}
    rows = [f"| {au} | {f(r['before'])} | {f(r['after'])} | "
            + ("n/a" if r["kept"] is None else f"{100 * r['kept']:.0f} %")
            + f" | {f(r['cross_before'])} | {f(r['cross_after'])} | {verdict[r['carried']]} |"
            for au, r in per_au.items()]
    carried = [au for au, r in per_au.items() if r["carried"]]
    lost = [au for au, r in per_au.items() if r["carried"] is False]
    expr = metrics["expression_r"]
    lines = [
        "# Normalization diagnostics", "",
        f"{metrics.get('n_subjects', '?')} subjects normalized onto the template "
        f"{metrics.get('template_subject', '?')}.", "",
        "## Identity leakage", "",
        f"Subject-id probe accuracy (logistic regression, 16x16 pixels, held-out sequences): "
        f"{f(ident['before'])} before, {f(ident['after'])} after (chance {f(ident['chance'])}).",
        "", "## Expression preservation per AU", "",
        "Ridge-regression probe of each AU's coded intensity from 16x16 pixels: Pearson r on "
        "held-out sequences of the same subjects, and subject-disjoint (even vs odd subjects). "
        f"*Kept* = r after / r before; an AU is carried when at least {KEPT:.0%} of its r "
        "survives.", "",
        "| AU | r before | r after | kept | r before (cross-subject) | r after (cross-subject) "
        "| carried |",
        "|---|---|---|---|---|---|---|", *rows, "",
        f"Mean r {f(expr['mean_before'])} -> {f(expr['mean_after'])}.  Carried: "
        f"{', '.join(carried) or 'none'}; lost: {', '.join(lost) or 'none'}.", ""]
    methods: dict[str, dict[str, Any]] = metrics.get("methods", {})
    if len(methods) > 1:  # every method's r after per AU, side by side
        names = list(methods)
        lines += ["## Every method", "",
                  "Identity probe after and per-AU expression r after, one column per method "
                  "(r before in the first column).", "",
                  "| AU | r before | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names),
                  "| identity probe | " + f(ident["before"]) + " | " + " | ".join(
                      f(methods[m]["identity_accuracy"]["after"]) for m in names) + " |",
                  *[f"| {au} | {f(r['before'])} | " + " | ".join(
                      f(methods[m].get("expression_per_au", {}).get(au, {}).get("after"))
                      for m in names) + " |" for au, r in per_au.items()], ""]
    return "\n".join(lines)


@dataclass
class GroupAverages:
    """Running sums of frames per Fig.-2 group, before and after normalization."""

    size: int
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict[str, Any], before: np.ndarray, after: np.ndarray) -> None:
        for name, column, pred in GROUPS:
            if not pred(row[column]):
                continue
            for when, frames in (("before", before), ("after", after)):
                key = f"{name}/{when}"
                self.sums[key] = self.sums.get(key, 0.0) + frames.astype(np.float64).sum(0)
                self.counts[key] = self.counts.get(key, 0) + len(frames)
            self.subjects[name] = self.subjects.get(name, 0) + 1

    def mean(self, name: str, when: str) -> np.ndarray | None:
        key = f"{name}/{when}"
        return self.sums[key] / self.counts[key] if self.counts.get(key) else None

    def gaps(self) -> dict[str, dict[str, float]]:
        """Mean |difference| (gray levels) between the paired groups' average faces."""
        out = {}
        for a, b, label in (("female", "male", "gender"), ("lighter", "darker", "skin"),
                            ("bp4d", "disfa", "dataset")):
            row = {}
            for when in ("before", "after"):
                ma, mb = self.mean(a, when), self.mean(b, when)
                if ma is not None and mb is not None:
                    row[when] = float(np.abs(ma - mb).mean())
            if row:
                out[label] = row
        return out


def fig2_group_averages(groups: GroupAverages, path: str | Path) -> Path:
    """Paper Fig. 2: luminance histograms (top), average faces before (middle) / after (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [g[0] for g in GROUPS]
    fig, axes = plt.subplots(3, len(names), figsize=(2.0 * len(names), 6.4),
                             gridspec_kw={"height_ratios": [0.8, 1, 1]})
    bins = np.linspace(0, 255, 33)
    for c, name in enumerate(names):
        before, after = groups.mean(name, "before"), groups.mean(name, "after")
        ax = axes[0, c]
        ax.set_title(f"{name} (n={groups.subjects.get(name, 0)})", fontsize=9)
        for img, color, label in ((before, "tab:blue", "before"), (after, "tab:orange", "after")):
            if img is not None:
                ax.hist(img.ravel(), bins=bins, color=color, alpha=0.6, label=label)
        ax.set_xlim(0, 255)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
        if c == 0:
            ax.legend(fontsize=7, frameon=False)
        for r, img in ((1, before), (2, after)):
            axes[r, c].axis("off")
            if img is None:
                axes[r, c].text(0.5, 0.5, "no subjects", ha="center", va="center", fontsize=8)
            else:
                axes[r, c].imshow(img, cmap="gray", vmin=0, vmax=255)
    axes[1, 0].text(-0.08, 0.5, "original", rotation=90, va="center", ha="right",
                    transform=axes[1, 0].transAxes, fontsize=9)
    axes[2, 0].text(-0.08, 0.5, "DeepFN", rotation=90, va="center", ha="right",
                    transform=axes[2, 0].transAxes, fontsize=9)
    fig.tight_layout()
    from deepfn.utils.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
