"""One way to run a stage, whoever starts it: ``dvc repro`` or a person.

``pipelines/<stage>.py`` (what ``dvc.yaml`` runs, paths from argv exactly as it declares them)
and ``deepfn <stage>`` (the same paths as defaults) both end in one call::

    run_stage(PREPROCESS, "params.yaml", raw=Path("data/raw"), out=Path("data/preprocessed"))

which does the same for every stage, in this order:

1. read and validate ``params.yaml`` (a bad key or value: one line naming it and the fix);
2. prefix log lines with the stage name; torch on all cores with one inter-op thread (the
   stages that run torch);
3. call ``run_<stage>(settings, paths...)`` of the subpackage that owns the stage (its
   :class:`Stage`, e.g. ``deepfn.data.preprocess.PREPROCESS``), with rich progress bars when stdout
   is a terminal;
4. print one summary line, ``<stage>: ...``, on stdout.

Defaults that are not dvc.yaml paths live in the :class:`Stage` too, so both ways get them: the
resumable work dir of ``pretrain``/``normalize`` (``.deepfn/work/<stage>``, outside DVC's outs).

Errors take one path (:func:`exit_code`): a :class:`~deepfn.errors.DeepFNError` prints one
``error: ...`` line on stderr and exits 2; Ctrl-C exits 130 (outputs are written atomically and
finished work is kept, so rerunning resumes).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepfn.errors import DeepFNError

__all__ = ["Stage", "run_stage", "exit_code", "stage_parser", "run_script",
           "configure_threads"]

INTERRUPTED = "interrupted: rerun to resume (finished work is kept)"


# ------------------------------------------------------------------------------ plumbing
def exit_code(fn: Callable[[], object]) -> int:
    """Run ``fn``: 0, or 2 after one ``error:`` line (DeepFNError), or 130 on Ctrl-C."""
    try:
        fn()
    except DeepFNError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        return 130
    return 0


def configure_threads(n: int | None = None) -> None:
    """Use all cores for intra-op work (the default on Linux is fine; this pins interop to 1)."""
    import torch

    if n:
        torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def _show_progress() -> bool:
    from rich import get_console

    return get_console().is_terminal


def stage_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--params``; ``description``: its first line is used."""
    lines = (description or "").strip().splitlines()
    p = argparse.ArgumentParser(description=lines[0] if lines else None)
    p.add_argument("--params", type=Path, default=Path("params.yaml"),
                   help="params file (default: params.yaml)")
    return p


def run_script(body: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser,
               argv: Sequence[str] | None = None) -> int:
    """A script that is not a stage (benchmarks): parse ``argv``, run ``body``, exit code."""
    args = parser.parse_args(argv)
    return exit_code(lambda: body(args))


# -------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class Stage:
    """A stage as both ways of starting it see it.

    ``call(settings, progress, **paths)`` runs ``run_<stage>`` and returns the summary line
    (without the ``<stage>: `` prefix).  Each subpackage defines its stages next to the code
    they run (``deepfn/data/preprocess.py``: ``PREPROCESS`` ...), so a stage's entrypoint imports
    only what the stage runs (DVC's deps and the run keys follow the imports).
    """

    name: str
    call: Callable[..., str]
    torch: bool = True  # set torch's threads up first


def run_stage(stage: Stage, params: str | Path = "params.yaml", *,
              overrides: Mapping[str, Any] | None = None, **paths: Any) -> int:
    """Run ``stage`` (see the module docstring); the exit code (0, 2 or 130)."""

    def run() -> None:
        from deepfn.config import load_settings

        settings = load_settings(params, dict(overrides or {}))
        logging.basicConfig(level=logging.INFO, format=f"{stage.name}: %(message)s")
        if stage.torch:
            configure_threads()
        line = stage.call(settings, _show_progress(), **paths)
        print(f"{stage.name}: {line}", flush=True)

    return exit_code(run)
