"""The data stages: ``synthesize`` (the raw corpus), ``preprocess`` and ``template``.

    run_synthesize(settings, out=Path("data/raw"))
    run_preprocess(settings, raw=Path("data/raw"), out=Path("data/preprocessed"))
    run_template(settings, data=Path("data/preprocessed/ae"), out=Path("data/template"))

``pipelines/<stage>.py`` and ``deepfn <stage>`` both run them as :data:`SYNTHESIZE`,
:data:`PREPROCESS` and :data:`TEMPLATE` through :func:`deepfn.stage.run_stage`.  Each writes its
output directory whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from deepfn.config.settings import Settings, SynthesizeSettings
from deepfn.data.corpus import read_subjects
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir

__all__ = ["run_synthesize", "run_preprocess", "run_template", "check_roster", "SYNTHESIZE",
           "PREPROCESS", "TEMPLATE"]


def check_roster(found: set[str], cfg: SynthesizeSettings) -> None:
    """The corpus must hold exactly ``synthesize.subjects`` (dvc.yaml's per-subject stages)."""
    wanted = set(cfg.subjects)
    if found != wanted:
        extra, missing = sorted(found - wanted), sorted(wanted - found)
        raise DeepFNError(
            f"params.yaml: synthesize.subjects does not match the imported corpus "
            f"(not listed: {', '.join(extra) or '-'}; not found: {', '.join(missing) or '-'}); "
            "set synthesize.subjects to the imported ids")


def _import_licensed(cfg: SynthesizeSettings, out: Path, progress: bool) -> pd.DataFrame:
    from deepfn.data.importers import import_corpus

    with atomic_dir(out) as staging:  # a roster mismatch leaves the previous corpus in place
        import_corpus(staging, bp4d_root=Path(cfg.bp4d_root) if cfg.bp4d_root else None,
                      disfa_root=Path(cfg.disfa_root) if cfg.disfa_root else None,
                      metadata_csv=Path(cfg.metadata or ""), image_size=cfg.image_size,
                      detector=cfg.detector, progress=progress)
        table = read_subjects(staging / "subjects.csv")
        check_roster(set(table.index), cfg)
    return table


def run_synthesize(settings: Settings, *, out: str | Path, progress: bool = True
                   ) -> pd.DataFrame:
    """The raw corpus in ``out``: rendered (``synthesize.source: synthetic``) or imported from
    licensed BP4D/DISFA copies (``licensed``; its subjects must be ``synthesize.subjects``).
    Returns the subjects table."""
    cfg, out = settings.synthesize, Path(out)
    if cfg.source == "licensed":
        return _import_licensed(cfg, out, progress)
    from deepfn.data.synth import synthesize_corpus

    return synthesize_corpus(out, cfg.subjects, seed=cfg.seed,
                             identity_strength=cfg.identity_strength,
                             frames_per_sequence=cfg.frames_per_sequence,
                             image_size=cfg.image_size, progress=progress)


def run_preprocess(settings: Settings, *, raw: str | Path, out: str | Path,
                   progress: bool = True) -> dict[str, int]:
    """Histogram equalization + resize: ``out/ae`` and ``out/clf``; subject and frame counts."""
    from deepfn.data.preprocess import preprocess_corpus

    return preprocess_corpus(raw, out, settings.preprocess, progress=progress)


def run_template(settings: Settings, *, data: str | Path, out: str | Path) -> dict[str, Any]:
    """The template subject by the paper's rule (§3.2): ``out/template.json`` + its frames."""
    from deepfn.data.template import select_template

    return select_template(data, out, settings.template)


# ------------------------------------------------------- the stages: run + one summary line
def _synthesize(s: Settings, progress: bool, *, out: Path) -> str:
    table = run_synthesize(s, out=out, progress=progress)
    return f"{len(table)} subjects ({s.synthesize.source}) -> {out}"


def _preprocess(s: Settings, progress: bool, *, raw: Path, out: Path) -> str:
    info = run_preprocess(s, raw=raw, out=out, progress=progress)
    return f"{info['subjects']} subjects, {info['frames']} frames -> {out}"


def _template(s: Settings, progress: bool, *, data: Path, out: Path) -> str:
    r = run_template(s, data=data, out=out)
    return f"{r['subject']} (median activation count {r['median_count']:.1f}) -> {out}"


SYNTHESIZE = Stage("synthesize", _synthesize)
PREPROCESS = Stage("preprocess", _preprocess)
TEMPLATE = Stage("template", _template, torch=False)
