"""The normalizer's stages as ``pipelines/<stage>.py`` and ``deepfn <stage>`` both run them.

:data:`PRETRAIN`, :data:`NORMALIZE` and :data:`TRANSFER` call :func:`~deepfn.normalizer.jobs.
run_pretrain`, :func:`~deepfn.normalizer.jobs.run_normalize` and
:func:`~deepfn.normalizer.transfer.run_transfer` through :func:`deepfn.stage.run_stage`, with the
defaults both ways share (the resumable work dir) and the one summary line each prints.
"""

from __future__ import annotations

from pathlib import Path

from deepfn.config.settings import Settings
from deepfn.normalizer.jobs import WORK_DIR, run_normalize, run_pretrain
from deepfn.normalizer.transfer import run_transfer
from deepfn.stage import Stage

__all__ = ["PRETRAIN", "NORMALIZE", "TRANSFER"]


def _pretrain(s: Settings, progress: bool, *, template: Path, out: Path,
              work_dir: Path | None = None) -> str:
    info = run_pretrain(s, template_dir=template, out=out,
                        work_dir=work_dir or WORK_DIR / "pretrain", progress=progress)
    return (f"{info['path']} ({s.pretrain.iterations} iterations, "
            f"sha256 {info['sha256'][:12]})")


def _normalize(s: Settings, progress: bool, *, subject: str, data: Path, template: Path,
               pretrained: Path, out: Path | None = None, work_dir: Path | None = None) -> str:
    info = run_normalize(s, subject=subject, data_dir=data, template_dir=template,
                         pretrained=pretrained,
                         out=out or Path("models/normalizers") / f"{subject}.pt",
                         work_dir=work_dir or WORK_DIR / "normalize", progress=progress)
    nan = float("nan")
    return (f"{subject}: {info['path']} ({info['iterations']} iterations, loss_subject "
            f"{info.get('final_loss_subject', nan):.4f}, loss_template "
            f"{info.get('final_loss_template', nan):.4f})")


def _transfer(s: Settings, progress: bool, *, data: Path, models: Path, out: Path,
              reports: Path) -> str:
    m = run_transfer(s, data_dir=data, models_dir=models, out_dir=out, reports_dir=reports,
                     progress=progress)
    ident, expr, nan = m["identity_accuracy"], m["expression_r"], float("nan")
    return (f"{m['n_subjects']} subjects onto {m['template_subject']} -> {out}: identity "
            f"probe {ident['before']:.2f} -> {ident['after']:.2f} (chance "
            f"{ident['chance']:.2f}), expression r {expr['mean_before'] or nan:.2f} -> "
            f"{expr['mean_after'] or nan:.2f}; diagnostics in {reports}")


PRETRAIN = Stage("pretrain", _pretrain)
NORMALIZE = Stage("normalize", _normalize)
TRANSFER = Stage("transfer", _transfer)
