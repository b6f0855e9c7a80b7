"""Template selection (paper §3.2): the most expressive BP4D(-like) subject.

Rule: count each AU's activations (coded occurrence == 1) per BP4D subject; the template is the
subject whose median count across AUs is highest (ties: the larger total, then the id).
Strategies are pluggable through :data:`STRATEGIES` (later: average face, per-group template).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepfn.config.settings import Settings, TemplateSettings
from deepfn.data.corpus import (
    AUS,
    read_manifest,
    read_subject,
    read_subjects,
    write_manifest,
    write_subject,
    write_subjects,
)
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir, write_json

__all__ = ["activation_counts", "most_expressive", "STRATEGIES", "select_template",
           "run_template", "TEMPLATE"]


def activation_counts(corpus_dir: str | Path, subjects: list[str]) -> pd.DataFrame:
    """(subject x AU) table of frames with occurrence == 1 (not-coded frames don't count)."""
    rows = {}
    for sid in subjects:
        occ = read_subject(corpus_dir, sid).occurrence
        rows[sid] = (occ == 1).sum(axis=0)
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"AU{a:02d}" for a in AUS])


def most_expressive(counts: pd.DataFrame) -> str:
    """The paper's rule: highest median activation count across AUs."""
    stats = pd.DataFrame({"median": counts.median(axis=1), "total": counts.sum(axis=1)})
    stats["id"] = stats.index
    return str(stats.sort_values(["median", "total", "id"],
                                 ascending=[False, False, True]).index[0])


STRATEGIES: dict[str, Callable[[pd.DataFrame], str]] = {"most_expressive": most_expressive}


def select_template(corpus_dir: str | Path, out_dir: str | Path,
                    settings: TemplateSettings) -> dict[str, Any]:
    """Choose the template, write ``out_dir/template.json`` and the template's frames as a
    one-subject corpus in ``out_dir`` (what the normalizers train on)."""
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    manifest = read_manifest(corpus_dir)
    table = read_subjects(corpus_dir / "subjects.csv")
    pool = list(table.index[table["dataset"] == "bp4d"])
    if not pool:
        raise DeepFNError(f"{corpus_dir}/subjects.csv: no BP4D(-like) subject to choose a template "
                          "from; add F###/M### ids to synthesize.subjects")
    counts = activation_counts(corpus_dir, pool)
    if settings.subject is not None:
        if settings.subject not in table.index:
            raise DeepFNError(f"template.subject: {settings.subject} is not in the corpus")
        chosen, rule = settings.subject, "forced by template.subject"
        if chosen not in counts.index:
            counts.loc[chosen] = activation_counts(corpus_dir, [chosen]).iloc[0]
    else:
        chosen, rule = STRATEGIES[settings.strategy](counts), settings.strategy
    result = {
        "subject": chosen, "rule": rule,
        "median_count": float(np.median(counts.loc[chosen])),
        "counts": {s: {k: int(v) for k, v in row.items()} for s, row in counts.iterrows()},
        "medians": {s: float(v) for s, v in counts.median(axis=1).items()},
    }
    with atomic_dir(out_dir) as tmp:
        write_subject(tmp, read_subject(corpus_dir, chosen))
        write_subjects(tmp / "subjects.csv", table.loc[[chosen]])
        write_manifest(tmp, source=manifest["source"], image_size=manifest["image_size"],
                       subjects=[chosen])
        write_json(tmp / "template.json", result)
    return result


# -------------------------------------------------- the stage (pipelines/template.py, the CLI)
def run_template(settings: Settings, *, data: str | Path, out: str | Path) -> dict[str, Any]:
    """The template subject by the paper's rule (§3.2): ``out/template.json`` + its frames."""
    return select_template(data, out, settings.template)


def _template(s: Settings, progress: bool, *, data: Path, out: Path) -> str:
    r = run_template(s, data=data, out=out)
    return f"{r['subject']} (median activation count {r['median_count']:.1f}) -> {out}"


TEMPLATE = Stage("template", _template, torch=False)
