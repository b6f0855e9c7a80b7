"""The ``experiments`` stage as ``pipelines/experiments.py`` and ``deepfn experiments`` run it:
:data:`EXPERIMENTS` calls :func:`~deepfn.au.experiments.run_experiments` through
:func:`deepfn.stage.run_stage` and prints one summary line."""

from __future__ import annotations

from pathlib import Path

from deepfn.au.experiments import run_experiments
from deepfn.config.settings import Settings
from deepfn.stage import Stage

__all__ = ["EXPERIMENTS"]


def _experiments(s: Settings, progress: bool, *, original: Path, normalized: Path,
                 template: Path, out: Path) -> str:
    n = run_experiments(s, original, normalized, template, out, progress=progress)["counts"]
    return (f"{n['runs']} runs ({n['runs_logged']} new, {n['runs_skipped']} already finished) "
            f"from {n['models']} models -> {out}")


EXPERIMENTS = Stage("experiments", _experiments)
