"""Apply exported dotted-key overrides to ``params.yaml`` content, as ``dvc exp run -S`` does,
so the tests can validate an export through the real settings loader."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with every ``section.key: value`` of ``overrides`` set (a new dict)."""
    out = copy.deepcopy(dict(raw))
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
