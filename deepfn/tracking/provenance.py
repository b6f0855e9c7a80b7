"""What a result depends on: the code a stage runs and the settings that can change a number.

A run key is ``run_key(<parts of the run>, **key_parts(settings, stage, device))``: the parts
name the run (condition, subject, data content hashes), :func:`key_parts` adds

``code``
    :func:`code_fingerprint` of the stage: sha256 over the sorted ``(relative path, bytes)`` of
    ``pipelines/<stage>.py`` and every ``deepfn``/``pipelines`` module it reaches by a static
    import walk (:func:`stage_modules`: ``ast``, imports inside functions included, a package's
    ``__init__.py`` with each of its modules).  The files are those of the ``deepfn`` package this
    process imported, i.e. the code that runs.  ``dvc.yaml`` lists the same files as the stage's
    code deps (tests/tracking/test_provenance.py checks both).
``settings``
    every field of the stage's :data:`STAGE_SECTIONS` except the named :data:`NEUTRAL` ones
    (fields that cannot change a number: worker counts, logging intervals, fields that only add
    or drop runs).  A field in neither :data:`RESULT` nor :data:`NEUTRAL` still goes into the key
    (the safe side), and a test fails naming it until someone classifies it.
``device``
    the resolved ``compute.device`` type (``cpu`` | ``cuda``): a GPU's float paths differ from a
    CPU's, so runs are not reused across the two.

So a rerun of unchanged code finds its runs again, an edit to any module the stage runs (or to a
result setting) keys new runs, and reverting the edit finds the earlier runs.  Every run carries
the fingerprint as the tag :data:`TAG_CODE_FINGERPRINT` (filter by it in the MLflow UI:
``tags.code_fingerprint = '...'``).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from deepfn.errors import DeepFNError

__all__ = [
    "TAG_CODE_FINGERPRINT", "PACKAGES", "RESULT", "NEUTRAL", "UNKEYED", "STAGE_SECTIONS",
    "project_root", "stage_entrypoint", "stage_modules", "code_fingerprint", "result_settings",
    "key_parts", "fingerprint_tags", "classification_problems",
]

TAG_CODE_FINGERPRINT = "code_fingerprint"
PACKAGES = ("deepfn", "pipelines")  # the import walk follows these top-level names only

# ---------------------------------------------------------------------- settings classification
# Per keyed section: the fields that can change a number (RESULT, in the key) and those that
# cannot (NEUTRAL, left out).  The key takes the whole section minus NEUTRAL.
RESULT: dict[str, frozenset[str]] = {
    "preprocess": frozenset({"ae_size", "clf_size", "equalize"}),
    "pretrain": frozenset({"iterations"}),
    "normalize": frozenset({
        "width", "latent", "iterations", "batch_size", "lr", "beta1", "beta2", "warm_start",
        "mean_face", "center_input", "finetune", "init", "precision", "rotation", "scale",
        "translation", "warp_grid", "warp_strength", "seed"}),
    "experiments": frozenset({
        "epochs", "equal_steps", "match_frames", "subject_frames", "batch_size", "lr", "beta1",
        "beta2", "weight_decay", "n_train", "n_val", "threshold", "thresholds", "class_balance",
        "flip", "precision", "seed"}),
}
NEUTRAL: dict[str, frozenset[str]] = {
    "preprocess": frozenset(),
    "pretrain": frozenset(),
    # resume and logging intervals (training resumes bit for bit); a check on the input
    "normalize": frozenset({"checkpoint_every", "log_every", "min_frames"}),
    # groups/normalizations/repetitions/dependent_subjects add or drop runs and never change
    # one; min_test is a check; strategy/workers choose how jobs are scheduled, not what a job
    # computes
    "experiments": frozenset({"groups", "normalizations", "repetitions", "dependent_subjects",
                              "min_test", "strategy", "workers"}),
}
# Top-level settings (sections and fields) that feed no run key, and why.
UNKEYED: dict[str, str] = {
    "profile": "selects defaults; the resolved sections carry its effect",
    "synthesize": "reaches results through the corpus content hashes",
    "template": "reaches results through the template subject and its data hash",
    "transfer": "reaches results through the normalized corpus content hashes",
    "stats": "reads results, trains nothing (the stats stage reruns under DVC)",
    "tune": "Optuna studies are keyed by study name and storage",
    "tracking": "where runs are stored, not what they hold",
    "compute": "enters the keys as the resolved device type (key_parts' device), not as the "
               "setting (auto)",
}
# The settings sections in each stage's key.  normalize's warm start enters its key as the
# pretrained model's content hash, so the pretrain section is not repeated there.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "pretrain": ("preprocess", "normalize", "pretrain"),
    "normalize": ("preprocess", "normalize"),
    "experiments": ("experiments",),
}


def classification_problems(settings_model: Any = None) -> list[str]:
    """One line per settings field (or section) classified nowhere, twice, or not a field.

    ``settings_model``: the pydantic model of all sections (default
    :class:`deepfn.config.settings.Settings`); an empty list means every field is classified.
    """
    if settings_model is None:
        from deepfn.config.settings import Settings as settings_model
    problems = []
    top = settings_model.model_fields
    for name in sorted(set(RESULT) | set(NEUTRAL) | set(UNKEYED)):
        if name not in top:
            problems.append(f"{name}: classified in deepfn/tracking/provenance.py but not a "
                            "settings section or field; remove it there")
    for name, info in top.items():
        keyed = name in RESULT or name in NEUTRAL
        if keyed and name in UNKEYED:
            problems.append(f"{name}: both keyed (RESULT/NEUTRAL) and UNKEYED; pick one")
        if not keyed:
            if name not in UNKEYED:
                problems.append(f"{name}: settings section in no run key and not in UNKEYED; "
                                "add it to RESULT and NEUTRAL, or to UNKEYED with the reason")
            continue
        fields = set(info.annotation.model_fields)
        result, neutral = RESULT.get(name, frozenset()), NEUTRAL.get(name, frozenset())
        for f in sorted(fields - result - neutral):
            problems.append(f"{name}.{f}: unclassified setting; add it to RESULT['{name}'] (it "
                            f"can change a number) or NEUTRAL['{name}'] (it cannot) in "
                            "deepfn/tracking/provenance.py")
        for f in sorted(result & neutral):
            problems.append(f"{name}.{f}: in both RESULT and NEUTRAL; keep one")
        for f in sorted((result | neutral) - fields):
            problems.append(f"{name}.{f}: classified but not a field of the {name} section; "
                            "remove it from deepfn/tracking/provenance.py")
    return problems


def result_settings(settings: Any, *sections: str) -> dict[str, dict[str, Any]]:
    """``{section: the resolved section minus its NEUTRAL fields}`` (JSON-ready values)."""
    out = {}
    for name in sections:
        if name not in NEUTRAL:
            raise KeyError(f"settings section {name!r} feeds no run key (see provenance.RESULT)")
        dumped = getattr(settings, name).model_dump(mode="json")
        out[name] = {k: v for k, v in dumped.items() if k not in NEUTRAL[name]}
    return out


# ------------------------------------------------------------------------------ code fingerprint
def project_root() -> Path:
    """The directory holding the ``deepfn`` package this process runs (and ``pipelines/``)."""
    return Path(__file__).resolve().parents[2]


def stage_entrypoint(stage: str, root: Path | None = None) -> Path:
    """``<root>/pipelines/<stage>.py`` (it may not exist: an installed package has no
    ``pipelines/``; see :func:`stage_modules`)."""
    return (root or project_root()) / "pipelines" / f"{stage}.py"


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    """``(dotted name, is a package)`` of a file under ``root``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _imported_names(tree: ast.AST, name: str, is_pkg: bool) -> Iterable[str]:
    """Dotted names every import statement of a module may load (at any depth of the tree)."""
    package = name if is_pkg else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from ..x import y
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _with_parents(name: str) -> Iterable[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c`` (importing a module runs its packages' inits)."""
    parts = name.split(".")
    return (".".join(parts[:i]) for i in range(1, len(parts) + 1))


@cache
def _walk(entry: Path, root: Path) -> tuple[str, ...]:
    seen: set[Path] = set()
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        name, is_pkg = _module_name(root, path)
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except SyntaxError as exc:
            raise DeepFNError(f"{path}:{exc.lineno}: syntax error ({exc.msg}); fix it before "
                              "running the stage") from exc
        for imported in _imported_names(tree, name, is_pkg):
            for mod in _with_parents(imported):
                if mod.split(".")[0] in PACKAGES:
                    found = _module_file(root, mod)
                    if found is not None and found not in seen:
                        todo.append(found)
        for pkg in _with_parents(name):  # its packages' __init__.py run first
            found = _module_file(root, pkg)
            if found is not None and found not in seen:
                todo.append(found)
    return tuple(sorted(p.relative_to(root).as_posix() for p in seen))


def stage_modules(stage: str, root: Path | None = None) -> tuple[str, ...]:
    """Relative paths (sorted) of ``pipelines/<stage>.py`` and every project module it reaches.

    Without ``pipelines/<stage>.py`` (deepfn installed as a package, run through its CLI) every
    module of the package: more than the stage runs, never less.
    """
    root = (root or project_root()).resolve()
    entry = stage_entrypoint(stage, root)
    if not entry.is_file():
        return tuple(sorted(p.relative_to(root).as_posix()
                            for p in (root / "deepfn").rglob("*.py")))
    return _walk(entry, root)


@cache
def _fingerprint(stage: str, root: Path) -> str:
    h = hashlib.sha256()
    for rel in stage_modules(stage, root):
        data = (root / rel).read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


def code_fingerprint(stage: str, root: Path | None = None) -> str:
    """16 hex of sha256 over the sorted ``(path, bytes)`` of :func:`stage_modules` (cached for
    the process: the modules it imported do not change under it either)."""
    return _fingerprint(stage, (root or project_root()).resolve())


def key_parts(settings: Any, stage: str, device: str) -> dict[str, Any]:
    """``{"code": fingerprint, "settings": result settings, "device": cpu | cuda}``: what every
    run key of ``stage`` includes besides the run's own parts.  ``device`` is the resolved
    ``compute.device`` (``cuda:1`` keys as ``cuda``): a GPU's float paths differ from a CPU's, so
    runs are not reused across the two."""
    return {"code": code_fingerprint(stage),
            "settings": result_settings(settings, *STAGE_SECTIONS[stage]),
            "device": device.split(":")[0]}


def fingerprint_tags(stage: str) -> dict[str, str]:
    """``{TAG_CODE_FINGERPRINT: code_fingerprint(stage)}`` for a run's tags."""
    return {TAG_CODE_FINGERPRINT: code_fingerprint(stage)}
