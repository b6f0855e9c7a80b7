"""One way to run a stage, whoever starts it: ``dvc repro`` or a person.

``pipelines/<stage>.py`` (what ``dvc.yaml`` runs, paths from argv exactly as it declares them)
and ``deepfn <stage>`` (the same paths as defaults) both end in one call::

    run_stage("preprocess", "params.yaml", raw=Path("data/raw"), out=Path("data/preprocessed"))

which does the same for every stage, in this order:

1. read and validate ``params.yaml`` (a bad key or value: one line naming it and the fix);
2. prefix log lines with the stage name; torch on all cores with one inter-op thread (the
   stages that run torch); the resumable work dir of ``pretrain``/``normalize`` (default
   ``.deepfn/work/<stage>``, outside DVC's outs);
3. call ``run_<stage>(settings, paths...)`` of the subpackage that owns the stage, with rich
   progress bars when stdout is a terminal;
4. print one summary line, ``<stage>: ...``, on stdout.

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
from typing import TYPE_CHECKING, Any

from deepfn.errors import DeepFNError

if TYPE_CHECKING:
    from deepfn.config.settings import Settings

__all__ = ["STAGES", "run_stage", "exit_code", "stage_parser", "run_script",
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
# Each: (settings, progress, **paths) -> the summary line (without the "<stage>: " prefix).
def _synthesize(s: Settings, progress: bool, *, out: Path) -> str:
    from deepfn.data.stage import run_synthesize

    table = run_synthesize(s, out=out, progress=progress)
    return f"{len(table)} subjects ({s.synthesize.source}) -> {out}"


def _preprocess(s: Settings, progress: bool, *, raw: Path, out: Path) -> str:
    from deepfn.data.stage import run_preprocess

    info = run_preprocess(s, raw=raw, out=out, progress=progress)
    return f"{info['subjects']} subjects, {info['frames']} frames -> {out}"


def _template(s: Settings, progress: bool, *, data: Path, out: Path) -> str:
    from deepfn.data.stage import run_template

    r = run_template(s, data=data, out=out)
    return f"{r['subject']} (median activation count {r['median_count']:.1f}) -> {out}"


def _pretrain(s: Settings, progress: bool, *, template: Path, out: Path,
              work_dir: Path | None = None) -> str:
    from deepfn.normalizer.jobs import WORK_DIR, run_pretrain

    info = run_pretrain(s, template_dir=template, out=out,
                        work_dir=work_dir or WORK_DIR / "pretrain", progress=progress)
    return (f"{info['path']} ({s.pretrain.iterations} iterations, "
            f"sha256 {info['sha256'][:12]})")


def _normalize(s: Settings, progress: bool, *, subject: str, data: Path, template: Path,
               pretrained: Path, out: Path | None = None, work_dir: Path | None = None) -> str:
    from deepfn.normalizer.jobs import WORK_DIR, run_normalize

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
    from deepfn.normalizer.transfer import run_transfer

    m = run_transfer(s, data_dir=data, models_dir=models, out_dir=out, reports_dir=reports,
                     progress=progress)
    ident, expr, nan = m["identity_accuracy"], m["expression_r"], float("nan")
    return (f"{m['n_subjects']} subjects onto {m['template_subject']} -> {out}: identity "
            f"probe {ident['before']:.2f} -> {ident['after']:.2f} (chance "
            f"{ident['chance']:.2f}), expression r {expr['mean_before'] or nan:.2f} -> "
            f"{expr['mean_after'] or nan:.2f}; diagnostics in {reports}")


def _experiments(s: Settings, progress: bool, *, original: Path, normalized: Path, template: Path,
                 out: Path) -> str:
    from deepfn.au.experiments import run_experiments

    n = run_experiments(s, original, normalized, template, out, progress=progress)["counts"]
    return (f"{n['runs']} runs ({n['runs_logged']} new, {n['runs_skipped']} already finished) "
            f"from {n['models']} models -> {out}")


def _stats(s: Settings, progress: bool, *, manifest: Path | None, out: Path,
           uri: str | None = None, filter: str | None = None) -> str:
    from deepfn.stats.stage import run_stats

    r = run_stats(s, manifest=manifest, out=out, uri=uri, filter=filter)
    mark = {"yes": "y", "no": "n", "n/a": "-"}
    found = ", ".join(f"{split} " + "".join(mark[v[f"finding_{f}"]] for f in "abcd")
                      for split, v in r["findings"].items())
    return (f"{r['n_runs']} runs, {r['n_observations']} participant observations "
            f"({r['fetch_seconds']:.1f} s to fetch); findings a-d (y/n/-): {found}; "
            f"report: {Path(out) / 'report.md'}; MLflow run {r['mlflow_run_id']}")


def _tune(s: Settings, progress: bool, *, original: Path, template: Path, out: Path,
          normalized: Path | None = None, ae: Path | None = None) -> str:
    from deepfn.tuning.stage import run_tune

    status = run_tune(s, original=original, template=template, out=out,
                      normalized=normalized, ae=ae)
    path = Path(out) / "status.json"
    if not status["enabled"]:
        return f"disabled (tune.enabled: false) -> {path}"
    t = status["trials"]
    return (f"study {status['study']} ({status['target']}): {t['complete']} complete, "
            f"{t['pruned']} pruned, {t['fail']} failed -> {path}")


@dataclass(frozen=True)
class Stage:
    """A stage's body (``run_<stage>`` + its summary) and whether it runs torch."""

    call: Callable[..., str]
    torch: bool = True


# In dvc.yaml's order; name = pipelines/<name>.py = params.yaml section = `deepfn <name>`.
STAGES: Mapping[str, Stage] = {
    "synthesize": Stage(_synthesize), "preprocess": Stage(_preprocess),
    "template": Stage(_template, torch=False), "pretrain": Stage(_pretrain),
    "normalize": Stage(_normalize), "transfer": Stage(_transfer),
    "experiments": Stage(_experiments), "stats": Stage(_stats, torch=False),
    "tune": Stage(_tune),
}


def run_stage(stage: str, params: str | Path = "params.yaml", *,
              overrides: Mapping[str, Any] | None = None, **paths: Any) -> int:
    """Run ``stage`` (see the module docstring); the exit code (0, 2 or 130)."""
    spec = STAGES[stage]

    def run() -> None:
        from deepfn.config import load_settings

        settings = load_settings(params, dict(overrides or {}))
        logging.basicConfig(level=logging.INFO, format=f"{stage}: %(message)s")
        if spec.torch:
            configure_threads()
        line = spec.call(settings, _show_progress(), **paths)
        print(f"{stage}: {line}", flush=True)

    return exit_code(run)
