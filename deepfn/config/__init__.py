"""Validated, typed, frozen settings from ``params.yaml`` (profiles + key-by-key overrides)."""

from deepfn.config.load import load_settings, resolve_params
from deepfn.config.profiles import PROFILES
from deepfn.config.settings import Settings

__all__ = ["PROFILES", "Settings", "load_settings", "resolve_params"]
