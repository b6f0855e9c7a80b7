"""``deepfn fanout normalize``: the stale ``normalize@<subject>`` stages as Ray tasks, recorded by
DVC as if ``dvc repro`` had run them (``compute.engine: ray``; docs/cluster.md).

DVC runs stages one at a time on one machine (no ``repro --jobs``; two ``dvc repro`` processes
fight over the repository lock), so the fan-out is driven from outside DVC, by this driver:

1. ``dvc repro pretrain``: everything the normalizers read is up to date;
2. ``dvc status --json normalize``: which ``normalize@<subject>`` stages are stale;
3. one Ray task per stale subject (:func:`~deepfn.compute.engine.task_options`: one GPU each
   where the cluster has GPUs), calling the stage's own function,
   :func:`deepfn.normalizer.jobs.run_normalize`, so the model files are byte-identical with the
   local engine's.  Inputs travel through Ray's object store (no shared filesystem needed): the
   template, ``models/pretrained.pt`` and the corpus tables once, each subject's ``.npz`` with
   its task.  The task runs in a temporary directory laid out like the project, with the MLflow
   run recorded in memory (:class:`RunRecorder`), and returns the model bytes and the record;
4. the driver, for each finished subject in turn: logs the recorded run to MLflow (one writer
   for a sqlite store; skipped when a FINISHED run of that run key exists, so a rerun never
   duplicates runs), writes ``models/normalizers/<subject>.pt`` atomically, and runs
   ``dvc commit -f normalize@<subject>`` -- only DVC writes ``dvc.lock``.

Afterwards ``dvc status`` shows the normalize stages clean and ``dvc repro`` goes on with
``transfer``.  A task whose worker process dies is retried by Ray
(:data:`~deepfn.compute.engine.MAX_RETRIES`); where the worker sees the driver's work dir
(``.deepfn/work/normalize``: the same machine, or a shared filesystem, detected by a token file)
the retry resumes from the run's last checkpoint.  A killed driver: rerunning the command does
what ``dvc status`` still shows stale.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepfn.errors import DeepFNError

if TYPE_CHECKING:
    from deepfn.config.settings import Settings
    from deepfn.tracking import Store

__all__ = ["RunRecorder", "RecordedRun", "SubjectResult", "FanoutSummary", "stale_subjects",
           "stage_threads", "normalize_task", "run_normalize_tasks", "record_result",
           "fanout_normalize", "DATA", "TEMPLATE", "PRETRAINED", "MODELS", "WORK"]

# the normalize stage's paths, as dvc.yaml declares them
DATA = "data/preprocessed/ae"
TEMPLATE = "data/template"
PRETRAINED = "models/pretrained.pt"
MODELS = "models/normalizers"
WORK = ".deepfn/work/normalize"
_TOKEN_FILE = ".fanout-token"


# ------------------------------------------------------------------ the run a task records
@dataclass
class RecordedRun:
    """An MLflow run as a task logged it: what the driver replays into the store."""

    experiment: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, v, ts, step
    artifacts: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # name, dir

    @property
    def run_key(self) -> str:
        from deepfn.tracking.names import TAG_RUN_KEY

        return self.tags[TAG_RUN_KEY]


class _RecordingRun:
    def __init__(self, run: RecordedRun) -> None:
        self.run = run

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0,
                    timestamp: int | None = None) -> None:
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        self.run.metrics += [(k, float(v), ts, step) for k, v in metrics.items()]

    def flush(self) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.run.artifacts.append((Path(path).name, artifact_path, Path(path).read_bytes()))


class RunRecorder:
    """A :class:`~deepfn.normalizer.jobs.Tracker` that keeps the runs in memory (a Ray task
    never writes to the tracking store; the driver does)."""

    def __init__(self) -> None:
        self.runs: list[RecordedRun] = []

    @contextlib.contextmanager
    def start_run(self, experiment: str, *, run_name: str, tags: Mapping[str, str],
                  params: Mapping[str, Any] | None = None, flush_every: int = 0
                  ) -> Iterator[_RecordingRun]:
        run = RecordedRun(experiment, run_name, dict(tags),
                          {k: str(v) for k, v in (params or {}).items()})
        yield _RecordingRun(run)
        self.runs.append(run)  # only a run whose block completed (FINISHED)


@dataclass
class SubjectResult:
    """What one task hands back: the model file's bytes, ``run_normalize``'s info, the run."""

    subject: str
    model: bytes
    info: dict[str, Any]
    run: RecordedRun
    node: str
    shared_work_dir: bool


# ------------------------------------------------------------------------------ the task
def _shared(work_dir: str, token: str) -> bool:
    """Whether this process sees the driver's work dir (same machine or shared filesystem)."""
    try:
        return (Path(work_dir) / _TOKEN_FILE).read_text() == token
    except OSError:
        return False


@functools.cache
def stage_threads() -> int:
    """torch's intra-op threads in a plain process on this machine, i.e. in a local stage.

    A Ray worker starts with ``OMP_NUM_THREADS`` = its task's CPUs (1), and the thread count
    changes how CPU reductions split, hence the last bits of the weights: the task runs with the
    stage's count so the model files are the local engine's, byte for byte."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                          env=env, capture_output=True, text=True, timeout=300)
    return int(proc.stdout.strip() or "1")


def normalize_task(settings: Settings, subject: str, common: Mapping[str, bytes], data: bytes,
                   work_dir: str, token: str, driver: tuple[str, int] = ("", 0)
                   ) -> SubjectResult:
    """One ``normalize@<subject>`` stage inside a Ray worker: lay the inputs out like the project
    in a temporary directory and call :func:`~deepfn.normalizer.jobs.run_normalize` there, on
    as many torch threads as a local stage (:func:`stage_threads`; ``driver``: the driver's host
    and its count, used on the driver's machine)."""
    from deepfn.normalizer.jobs import run_normalize
    from deepfn.stage import configure_threads

    host, threads = driver
    configure_threads(threads if host == socket.gethostname() and threads else stage_threads())

    shared = _shared(work_dir, token)
    work = Path(work_dir) if shared else Path(tempfile.gettempdir()) / "deepfn-work" / "normalize"
    recorder = RunRecorder()
    with tempfile.TemporaryDirectory(prefix=f"deepfn-{subject}-") as tmp:
        root = Path(tmp)
        for rel, blob in {**common, f"{DATA}/{subject}.npz": data}.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(blob)
        out = f"{MODELS}/{subject}.pt"
        with contextlib.chdir(root):
            info = run_normalize(settings, subject=subject, data_dir=DATA, template_dir=TEMPLATE,
                                 pretrained=PRETRAINED, out=out, work_dir=work, progress=False,
                                 tracker=recorder)
        model = (root / out).read_bytes()
    (run,) = recorder.runs
    return SubjectResult(subject, model, info, run, socket.gethostname(), shared)


def _inputs(root: Path) -> dict[str, bytes]:
    """The files every task reads (template dir, pretrained model, corpus tables)."""
    files = [p for p in sorted((root / TEMPLATE).rglob("*")) if p.is_file()]
    files += [root / PRETRAINED, root / DATA / "subjects.csv", root / DATA / "manifest.json"]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise DeepFNError(f"{missing[0]}: not found; run dvc repro pretrain first (deepfn fanout "
                          "normalize does unless --no-upstream)")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def run_normalize_tasks(settings: Settings, subjects: list[str], root: Path,
                        cluster: Any) -> Iterator[SubjectResult | DeepFNError]:
    """Submit one task per subject on the connected cluster; yield each result as it finishes
    (a task that failed: its error as one line, after the retries)."""
    from deepfn.compute.engine import require_ray, task_device, task_options

    ray = require_ray()
    options = task_options(settings.compute.device, cluster)
    task_settings = settings.model_copy(update={"compute": settings.compute.model_copy(
        update={"device": task_device(options)})})
    work = (root / WORK).resolve()
    work.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (work / _TOKEN_FILE).write_text(token)
    common = ray.put(_inputs(root))
    remote = ray.remote(normalize_task).options(name="normalize", **options)
    driver = (socket.gethostname(), stage_threads())
    pending = {remote.remote(task_settings, s, common, (root / DATA / f"{s}.npz").read_bytes(),
                             str(work), token, driver): s for s in subjects}
    while pending:
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        subject = pending.pop(ref)
        try:
            yield ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, DeepFNError) else None
            first = str(cause) if cause else str(exc).strip().splitlines()[-1]
            yield DeepFNError(f"normalize@{subject}: {first}")
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0]
            yield DeepFNError(f"normalize@{subject}: the task was lost after "
                              f"{options['max_retries']} retries ({first})")


# ---------------------------------------------------------------------------- the driver
def record_result(result: SubjectResult, store: Store, root: Path, *,
                  fingerprint: str) -> bool:
    """Log the task's run (unless a FINISHED run of its key exists) and write the model file;
    True when a new run was logged."""
    from deepfn.tracking import git_commit
    from deepfn.tracking.names import TAG_GIT_COMMIT, TAG_RUN_KEY
    from deepfn.tracking.provenance import TAG_CODE_FINGERPRINT
    from deepfn.utils.io import atomic_path

    run = result.run
    if run.tags.get(TAG_CODE_FINGERPRINT) != fingerprint:
        raise DeepFNError(f"normalize@{result.subject}: node {result.node} runs other deepfn "
                          f"code (fingerprint {run.tags.get(TAG_CODE_FINGERPRINT)}, this driver "
                          f"{fingerprint}); install this checkout on every node")
    new = not store.finished_by_key(run.experiment, f"tags.{TAG_RUN_KEY} = '{run.run_key}'")
    if new:
        tags = {**run.tags, TAG_GIT_COMMIT: git_commit()}  # the task ran in a scratch dir
        with store.start_run(run.experiment, run_name=run.run_name, tags=tags,
                             params=run.params) as writer, \
                tempfile.TemporaryDirectory() as tmp:
            for key, value, ts, step in run.metrics:
                writer.log_metrics({key: value}, step=step, timestamp=ts)
            writer.flush()
            for name, artifact_path, blob in run.artifacts:
                (Path(tmp) / name).write_bytes(blob)
                writer.log_artifact(Path(tmp) / name, artifact_path)
    with atomic_path(root / MODELS / f"{result.subject}.pt") as tmp_path:
        tmp_path.write_bytes(result.model)
    return new


def _dvc() -> str:
    """The ``dvc`` next to this Python (the venv's), else the one on PATH."""
    here = Path(sys.executable).with_name("dvc")
    return str(here) if here.exists() else "dvc"


def _dvc_run(args: list[str], root: Path, what: str) -> str:
    proc = subprocess.run([_dvc(), *args], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise DeepFNError(f"dvc {' '.join(args)} failed in {root} ({what}): "
                          f"{tail[-1] if tail else proc.returncode}")
    return proc.stdout


def stale_subjects(root: Path, subjects: list[str] | tuple[str, ...]) -> list[str]:
    """The subjects whose ``normalize@<subject>`` stage ``dvc status`` shows changed (roster
    order)."""
    out = _dvc_run(["status", "--json", "normalize"], root, "which normalizers are stale")
    status = json.loads(out or "{}")
    return [s for s in subjects if f"normalize@{s}" in status]


@dataclass
class FanoutSummary:
    """What a fan-out did: subjects run, runs logged, subjects that failed, wall seconds."""

    done: list[str] = field(default_factory=list)
    logged: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cluster: str = ""
    record_seconds: list[float] = field(default_factory=list)  # the driver's share per subject


def fanout_normalize(settings: Settings, root: Path = Path("."), *, upstream: bool = True,
                     echo: Callable[[str], None] = print) -> FanoutSummary:
    """The whole command (module docstring): up to date upstream, stale normalizers on Ray,
    each recorded in MLflow, the workspace and ``dvc.lock``."""
    from deepfn.compute.engine import ray_session
    from deepfn.tracking import Store
    from deepfn.tracking.provenance import code_fingerprint

    t0 = time.perf_counter()
    root = root.resolve()
    if settings.compute.engine != "ray":
        raise DeepFNError("compute.engine: local; set compute.engine: ray (and compute.address) "
                          "in params.yaml to fan the normalizers out, or run dvc repro")
    if upstream:
        echo("dvc repro pretrain (the normalizers' inputs) ...")
        _dvc_run(["repro", "pretrain"], root, "the normalizers' inputs")
    stale = stale_subjects(root, settings.synthesize.subjects)
    summary = FanoutSummary()
    if not stale:
        echo("every normalize@<subject> stage is up to date")
        return summary
    with contextlib.chdir(root):
        store = Store(configured=settings.tracking.uri)
    fingerprint = code_fingerprint("normalize")
    if code_fingerprint("normalize", root) != fingerprint:
        raise DeepFNError(f"{root}: the deepfn this command runs ({Path(__file__).parents[2]})"
                          " differs from the project's code; install the project's (pip install "
                          "-e .) and run deepfn fanout normalize from its root")
    with ray_session(settings.compute.address) as cluster:
        summary.cluster = f"{cluster.address} ({cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs)"
        echo(f"{len(stale)} stale normalizers -> Ray cluster {summary.cluster}")
        for item in run_normalize_tasks(settings, stale, root, cluster):
            if isinstance(item, DeepFNError):
                summary.failed.append(str(item).split(":", 1)[0].removeprefix("normalize@"))
                echo(f"error: {item}")
                continue
            t1 = time.perf_counter()
            with contextlib.chdir(root):
                summary.logged += record_result(item, store, root, fingerprint=fingerprint)
            _dvc_run(["commit", "-f", "-q", f"normalize@{item.subject}"], root,
                     "recording the stage")
            summary.record_seconds.append(time.perf_counter() - t1)
            summary.done.append(item.subject)
            resumed = item.info.get("resumed_from") or 0
            echo(f"normalize@{item.subject}: {MODELS}/{item.subject}.pt on {item.node}"
                 + (f" (resumed from iteration {resumed})" if resumed else "")
                 + f" [{len(summary.done)}/{len(stale)}]")
    summary.seconds = time.perf_counter() - t0
    if summary.failed:
        raise DeepFNError(f"normalize: {len(summary.failed)} of {len(stale)} subjects failed "
                          f"({', '.join(summary.failed)}); fix the error above and rerun deepfn "
                          "fanout normalize (the finished ones are recorded)")
    return summary
