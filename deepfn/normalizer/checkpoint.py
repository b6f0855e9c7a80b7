"""Model files and resumable work checkpoints (all loaded with ``torch.load(weights_only=True)``).

Two kinds of file:

``models/pretrained.pt``, ``models/normalizers/<subject>.pt`` (DVC outs)
    ``{"format", "kind", "arch", "state_dict", "meta"}``: weights only plus a small metadata dict
    (subject, template subject, iterations, seed, final losses).  A pure function of the stage's
    inputs: no wall times, no hashes of files, and the zip archive inside has a fixed name, so the
    same inputs write the same bytes (timings go to MLflow).  :func:`content_hash` keys what is
    derived from a model on its weights and architecture, never on the file.

``.deepfn/work/<stage>/<name>-<confighash>.pt`` (outside the DVC outs: DVC deletes outs before it
re-runs a stage)
    ``{"format", "kind": "work", "key", "arch", "model", "optimizer", "generator", "torch_rng",
    "iteration", "loss_subject", "loss_template", "iterations_per_s"}``: everything a killed
    run needs to continue bit-for-bit.  ``key`` is the hash of everything the result depends on
    (settings, data and warm-start hashes), so a checkpoint of other settings is never resumed.

Every write goes to a temporary sibling and is renamed into place; every problem on load (missing,
corrupt, other format or architecture) is one :class:`DeepFNError` line naming the file and the fix.
:data:`FORMAT` changes whenever what a file holds changes (format 2: every architecture field in
``arch``, no timings in ``meta``); an older file is refused with the stage to rerun.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from deepfn.errors import DeepFNError
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.utils.io import atomic_path

__all__ = [
    "FORMAT", "work_checkpoint_path", "save_work_checkpoint", "load_work_checkpoint",
    "save_model", "load_model", "read_model_file", "content_hash",
]

FORMAT = 2
_MODEL_KINDS = ("pretrained", "normalizer")


def work_checkpoint_path(work_dir: str | Path, name: str, key: str) -> Path:
    """``<work_dir>/<name>-<key>.pt``: one resumable checkpoint per (subject, config hash)."""
    return Path(work_dir) / f"{name}-{key}.pt"


def _save(path: Path, obj: dict[str, Any]) -> None:
    # through a file object: torch.save(obj, <path>) names the zip archive inside after the
    # (random) temporary file name, so equal objects would give different bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def _load(path: Path, fix: str, old_format_fix: str | None = None) -> dict[str, Any]:
    if not path.is_file():
        raise DeepFNError(f"{path}: file not found; {fix}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise DeepFNError(f"{path}: corrupt or not a deepfn checkpoint "
                          f"({exc.__class__.__name__}); delete it and {fix}") from exc
    if not isinstance(obj, dict) or "format" not in obj:
        raise DeepFNError(f"{path}: not a deepfn checkpoint; delete it and {fix}")
    if obj["format"] != FORMAT:
        raise DeepFNError(f"{path}: checkpoint format {obj['format']}, this deepfn reads "
                          f"{FORMAT}; {old_format_fix or fix}")
    return obj


def _check_arch(path: Path, obj: dict[str, Any], arch: ArchConfig | None, fix: str) -> ArchConfig:
    try:
        found = ArchConfig(**obj["arch"])
    except (KeyError, TypeError, DeepFNError) as exc:
        raise DeepFNError(f"{path}: checkpoint has no valid architecture; delete it and "
                          f"{fix}") from exc
    if arch is not None and found != arch:
        raise DeepFNError(f"{path}: built for {found} but the settings ask for {arch}; {fix}")
    return found


# --------------------------------------------------------------------- resumable work checkpoints
def save_work_checkpoint(path: Path, *, model: DeepFNAutoencoder, optimizer: Any,
                         generator: torch.Generator, state: Any, key: str) -> None:
    """Atomically write everything :func:`~deepfn.normalizer.train.fit_normalizer` needs to
    resume."""
    _save(path, {
        "format": FORMAT, "kind": "work", "key": key, "arch": asdict(model.cfg),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        # the CUDA generator's state too where the run is on CUDA (restored only on CUDA, so a
        # GPU checkpoint resumes on a CPU and vice versa)
        **({"cuda_rng": torch.cuda.get_rng_state(model_device)}
           if (model_device := next(model.parameters()).device).type == "cuda" else {}),
        "iteration": state.iteration, "loss_subject": list(state.loss_subject),
        "loss_template": list(state.loss_template),
        "iterations_per_s": [list(p) for p in state.iterations_per_s],
    })


def load_work_checkpoint(path: Path, arch: ArchConfig, key: str) -> dict[str, Any]:
    """Load and validate a work checkpoint for ``arch`` and config hash ``key``."""
    fix = "rerun the stage to start this run over"
    obj = _load(path, fix, old_format_fix=f"delete it and {fix}")
    if obj.get("kind") != "work":
        raise DeepFNError(f"{path}: not a work checkpoint (kind {obj.get('kind')!r}); delete it "
                          f"and {fix}")
    _check_arch(path, obj, arch, f"delete it and {fix}")
    if key and obj.get("key") != key:
        raise DeepFNError(f"{path}: written for settings hash {obj.get('key')!r}, not {key!r}; "
                          f"delete it and {fix}")
    missing = [k for k in ("model", "optimizer", "generator", "torch_rng", "iteration",
                           "loss_subject", "loss_template", "iterations_per_s") if k not in obj]
    if missing:
        raise DeepFNError(f"{path}: checkpoint lacks {', '.join(missing)}; delete it and {fix}")
    return obj


# --------------------------------------------------------------------------- final model files
def content_hash(model: DeepFNAutoencoder) -> str:
    """16 hex of sha256 over the architecture (every field) and the weights (names, dtypes,
    shapes, bytes): equal for equal models whatever file or metadata they came with."""
    h = hashlib.sha256(json.dumps(asdict(model.cfg), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_model(path: str | Path, model: DeepFNAutoencoder, *, kind: str,
               meta: dict[str, Any]) -> None:
    """Atomically write weights (contiguous, CPU) + ``meta`` (plain str/int/float/list/dict; keep
    it a function of the inputs: no timings)."""
    if kind not in _MODEL_KINDS:
        raise ValueError(f"kind must be one of {_MODEL_KINDS}, got {kind!r}")
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _save(Path(path), {"format": FORMAT, "kind": kind, "arch": asdict(model.cfg),
                       "state_dict": weights, "meta": dict(meta)})


def read_model_file(path: str | Path, *, kind: str, arch: ArchConfig | None = None,
                    fix: str = "rerun the stage that writes it (dvc repro)"
                    ) -> tuple[ArchConfig, dict[str, Any], dict[str, Any]]:
    """Validate a model file -> (architecture, state_dict, meta); errors are one line."""
    path = Path(path)
    obj = _load(path, fix)
    if obj.get("kind") != kind:
        raise DeepFNError(f"{path}: holds a {obj.get('kind')!r} model, expected {kind!r}; {fix}")
    found = _check_arch(path, obj, arch, fix)
    if not isinstance(obj.get("state_dict"), dict) or not isinstance(obj.get("meta"), dict):
        raise DeepFNError(f"{path}: checkpoint lacks state_dict/meta; delete it and {fix}")
    return found, obj["state_dict"], obj["meta"]


def load_model(path: str | Path, *, kind: str = "normalizer", arch: ArchConfig | None = None,
               fix: str = "rerun the stage that writes it (dvc repro)"
               ) -> tuple[DeepFNAutoencoder, dict[str, Any]]:
    """Build the autoencoder stored in ``path`` (checked against ``arch`` if given), eval mode."""
    found, weights, meta = read_model_file(path, kind=kind, arch=arch, fix=fix)
    with torch.device("meta"):  # no random init: the weights are assigned below
        model = DeepFNAutoencoder(found)
    try:
        model.load_state_dict(weights, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DeepFNError(f"{path}: weights do not fit {found} ({first}); {fix}") from exc
    return model.eval(), meta
