"""Shared plumbing for the thin DVC stage entrypoints in ``pipelines/``.

Each ``pipelines/<stage>.py`` is ``main(argv=None) -> int``: parse the paths ``dvc.yaml`` passes,
load and validate ``params.yaml`` (``--params``), call one deepfn function.  :func:`run_stage`
turns a :class:`~deepfn.errors.DeepFNError` into one ``error:`` line and exit code 2, and an
interrupt into exit code 130 (outputs are written atomically, so nothing is half-written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from deepfn.errors import DeepFNError

__all__ = ["stage_parser", "run_stage", "configure_threads"]


def stage_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return p


def configure_threads(n: int | None = None) -> None:
    """Use all cores for intra-op work (the default on Linux is fine; this pins interop to 1)."""
    import torch

    if n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def run_stage(body: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
              argv: Sequence[str] | None = None) -> int:
    args = parser.parse_args(argv)
    try:
        body(args)
    except DeepFNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the stage (dvc repro) to resume", file=sys.stderr)
        return 130
    return 0
