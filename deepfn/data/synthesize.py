"""The ``synthesize`` stage: the raw corpus, rendered (synthetic FACS faces) or imported.

    run_synthesize(settings, out=Path("data/raw"))

``pipelines/synthesize.py`` and ``deepfn synthesize`` both run it as :data:`SYNTHESIZE` through
:func:`deepfn.stage.run_stage`.  It writes ``data/raw`` whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfn.config.settings import Settings, SynthesizeSettings
from deepfn.data.corpus import read_subjects
from deepfn.errors import DeepFNError
from deepfn.stage import Stage
from deepfn.utils.io import atomic_dir

__all__ = ["run_synthesize", "check_roster", "SYNTHESIZE"]


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


def _synthesize(s: Settings, progress: bool, *, out: Path) -> str:
    table = run_synthesize(s, out=out, progress=progress)
    return f"{len(table)} subjects ({s.synthesize.source}) -> {out}"


SYNTHESIZE = Stage("synthesize", _synthesize)
