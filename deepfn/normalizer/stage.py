"""The normalizer's stages as ``pipelines/<stage>.py`` and ``deepfn <stage>`` both run them.

:data:`PRETRAIN` and :data:`NORMALIZE` call :func:`~deepfn.normalizer.jobs.run_pretrain` and
:func:`~deepfn.normalizer.jobs.run_normalize` through :func:`deepfn.stage.run_stage`, with the
defaults both ways share (the resumable work dir) and the one summary line each prints.
(``transfer`` is defined next to its code, :data:`deepfn.normalizer.transfer.TRANSFER`, so the
normalizer stages' code fingerprint does not include it.)
"""

from __future__ import annotations

from pathlib import Path

from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError
from deepfn.normalizer.jobs import WORK_DIR, run_normalize, run_pretrain
from deepfn.stage import Stage

__all__ = ["PRETRAIN", "NORMALIZE"]


def _pretrain(s: Settings, progress: bool, *, template: Path, out: Path,
              work_dir: Path | None = None) -> str:
    info = run_pretrain(s, template_dir=template, out=out,
                        work_dir=work_dir or WORK_DIR / "pretrain", progress=progress)
    return (f"{info['path']} ({s.pretrain.iterations} iterations, "
            f"sha256 {info['sha256'][:12]})")


def _normalize(s: Settings, progress: bool, *, subject: str, data: Path, template: Path,
               pretrained: Path, out: Path | None = None, work_dir: Path | None = None) -> str:
    if s.compute.engine == "ray":  # the cluster runs them: docs/cluster.md
        raise DeepFNError("compute.engine: ray runs the normalizers on the Ray cluster: run "
                          "`deepfn fanout normalize`, then `dvc repro` (or set compute.engine: "
                          "local to train them here)")
    info = run_normalize(s, subject=subject, data_dir=data, template_dir=template,
                         pretrained=pretrained,
                         out=out or Path("models/normalizers") / f"{subject}.pt",
                         work_dir=work_dir or WORK_DIR / "normalize", progress=progress)
    nan = float("nan")
    return (f"{subject}: {info['path']} ({info['iterations']} iterations, loss_subject "
            f"{info.get('final_loss_subject', nan):.4f}, loss_template "
            f"{info.get('final_loss_template', nan):.4f})")


PRETRAIN = Stage("pretrain", _pretrain)
NORMALIZE = Stage("normalize", _normalize)
