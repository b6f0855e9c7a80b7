"""Load ``params.yaml``: select the profile, apply key-by-key overrides, validate, freeze.

Every problem is one line naming the key and the fix, e.g.::

    params.yaml: normalize.iterations: Input should be greater than or equal to 1 (got -5)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from deepfn.config.profiles import PROFILE_NAMES, PROFILES
from deepfn.config.settings import Settings
from deepfn.errors import DeepFNError

__all__ = ["load_settings", "resolve_params", "settings_from_dict"]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DeepFNError(f"{path}: params file not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DeepFNError(f"{path}:{where} is not valid YAML; fix the syntax") from exc
    if not isinstance(raw, dict):
        raise DeepFNError(f"{path}: top level must be a mapping of sections")
    return raw


def _drop_nulls(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_nulls(v) if isinstance(v, dict) else v) for k, v in d.items()
            if v is not None}


def resolve_params(raw: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Merge model defaults <- profile values <- non-null params values (a plain dict)."""
    raw = copy.deepcopy(raw)
    profile = raw.get("profile", "default")
    if profile not in PROFILES:
        raise DeepFNError(f"{source}: profile: {profile!r} is not a profile; allowed: "
                          f"{', '.join(PROFILE_NAMES)}")
    merged: dict[str, Any] = copy.deepcopy(PROFILES[profile])
    for section, values in raw.items():
        if isinstance(values, dict):
            base = merged.setdefault(section, {})
            base.update(_drop_nulls(values))
        elif values is not None:
            merged[section] = values
    merged["profile"] = profile
    return merged


def _one_line(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        section = key.rsplit(".", 1)[0] if "." in key else "top level"
        return (f"{source}: {key}: unknown key; remove it or check its spelling "
                f"(see docs/params.md for the keys of {section})")
    got = err.get("input")
    got_s = f" (got {got!r})" if got is not None and not isinstance(got, dict) else ""
    more = f" [+{len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"{source}: {key}: {msg}{got_s}{more}"


def settings_from_dict(raw: dict[str, Any], source: str = "params.yaml") -> Settings:
    merged = resolve_params(raw, source)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise DeepFNError(_one_line(exc, source)) from None


def load_settings(path: str | Path = "params.yaml",
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Read, resolve and validate ``params.yaml``; ``overrides`` are dotted keys -> values."""
    path = Path(path)
    raw = _read_yaml(path)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return settings_from_dict(raw, str(path))
