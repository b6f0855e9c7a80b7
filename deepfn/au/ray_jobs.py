"""The ``ray`` strategy: the experiments' model jobs as Ray tasks (``compute.engine: ray``).

    with ray_session(settings.compute.address) as cluster:    # deepfn.compute.engine
        strategy = RayStrategy(cluster, device=cluster_device(settings.compute.device, cluster))
        strategy.run(jobs, on_result)          # on_result runs here, in the driver

* **Inputs** go through Ray's object store, not a shared filesystem: each subject's arrays
  (uint8 frames, occurrence labels, frame parts) are put once per run (``ray.put``), and a task
  fetches only the subjects its jobs read (:class:`ObjectStoreCache`).
* **CPU workers**: the jobs in batches, about :data:`TASKS_PER_CPU` tasks per CPU of the cluster
  (jobs dealt round-robin, largest first, so batches are even); a task trains its batch one job
  after another on one thread, so scheduling and fetching subjects is paid once per batch, not
  per model.
* **GPU workers** (``compute.device: cuda``, or ``auto`` on a cluster with GPUs), or
  ``experiments.strategy: ensemble``: one :func:`~deepfn.au.ensemble.group_jobs` group per
  task, trained as one vectorized ensemble on the task's GPU (``num_gpus=1``); at most
  :data:`MAX_MODELS` models a group, fewer when that leaves a GPU idle.
* **Results** come back to the driver as tasks finish (``ray.wait``) and go to ``on_result``
  there: the driver alone logs MLflow runs (one writer for a sqlite store), so a killed driver
  loses only unfinished tasks and a rerun resumes from the run keys, as with the local engine.
* **Faults**: a task whose worker process dies is run again by Ray (``max_retries``,
  :data:`deepfn.compute.engine.MAX_RETRIES`); a task that raises stops the run and the
  pending tasks are cancelled, as with the local strategies.

Same jobs and seeds -> the same results as the local strategies (one thread per job, as the
``process`` pool; float reduction order aside).  ``ray`` is imported only inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfn.au.strategies import OnResult, Strategy
from deepfn.au.trainer import JobResult, SubjectCache, SubjectTensors, TrainJob
from deepfn.compute.engine import (
    MAX_RETRIES,
    RayCluster,
    require_ray,
    task_device,
    task_options,
)
from deepfn.data.corpus import read_subject
from deepfn.errors import DeepFNError

__all__ = ["RayStrategy", "ObjectStoreCache", "cluster_device", "batches", "subjects_of",
           "put_subjects", "train_task",
           "TASKS_PER_CPU", "MAX_MODELS"]

TASKS_PER_CPU = 2  # batches per cluster CPU: enough to even out the tail, few enough to amortize
MAX_MODELS = 128  # models per ensemble task (deepfn.au.ensemble.group_jobs)

SubjectKey = tuple[str, str]  # (corpus dir as the driver names it, subject id)
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # images (N, H, W) uint8, occurrence, parts


def cluster_device(device: str, cluster: RayCluster) -> str:
    """``compute.device`` as the tasks on ``cluster`` compute: ``cuda`` (each task's one GPU)
    or ``cpu`` (one line if the setting asks for a GPU the cluster lacks)."""
    return task_device(task_options(device, cluster))


def subjects_of(job: TrainJob) -> set[SubjectKey]:
    """Every (corpus, subject) a job reads."""
    names = {*job.train, *job.val, *(s for _, subjects in job.tests for s in subjects)}
    return {(job.corpus_dir, s) for s in names}


def batches(jobs: Sequence[TrainJob], n: int) -> list[list[TrainJob]]:
    """``jobs`` dealt round-robin into ``min(n, len(jobs))`` batches (largest first in, so the
    batches carry about the same work)."""
    n = max(1, min(n, len(jobs)))
    return [list(jobs[i::n]) for i in range(n)]


def _arrays(corpus_dir: str, subject: str) -> Arrays:
    from deepfn.au.protocol import frame_parts

    d = read_subject(corpus_dir, subject)
    return d.images, d.occurrence, frame_parts(d.sequence, d.frame)


class ObjectStoreCache(SubjectCache):
    """A :class:`SubjectCache` that reads subjects from Ray's object store (``refs``: what the
    driver put), each once per task."""

    def __init__(self, refs: Mapping[SubjectKey, Any]) -> None:
        super().__init__()
        self._refs = refs
        self._held: dict[SubjectKey, SubjectTensors] = {}

    def get(self, corpus_dir: str | Path, subject: str) -> SubjectTensors:
        import torch

        key = (str(corpus_dir), subject)
        if key not in self._held:
            images, occurrence, parts = require_ray().get(self._refs[key])
            # object-store arrays are read-only views: one private copy of the frames
            self._held[key] = SubjectTensors(torch.from_numpy(images.copy()).unsqueeze(1),
                                             occurrence, parts)
        return self._held[key]

    def __len__(self) -> int:
        return len(self._held)


def train_task(jobs: list[TrainJob], refs: dict[SubjectKey, Any], ensemble: bool
                ) -> list[JobResult]:
    """One Ray task: ``jobs`` trained with the subjects from ``refs``, results to the driver."""
    import torch

    from deepfn.compute.device import resolve_compute

    torch.set_num_threads(1)  # the task holds one CPU (or one GPU and one CPU)
    cfg = jobs[0].config
    compute = resolve_compute(cfg.device, "bf16" if cfg.precision == "bf16" else "fp32")
    compute.configure()
    cache = ObjectStoreCache(refs)
    if ensemble:
        from deepfn.au.ensemble import train_jobs

        return train_jobs(jobs, compute, cache=cache)
    from deepfn.au.trainer import train_job

    return [train_job(job, cache) for job in jobs]


class RayStrategy(Strategy):
    """Jobs as Ray tasks on ``cluster`` (see the module docstring); ``device``: what the tasks
    compute on (:func:`cluster_device`); ``ensemble``: one ensemble per task even on CPUs."""

    name = "ray"

    def __init__(self, cluster: RayCluster, device: str, *, ensemble: bool = False
                 ) -> None:
        self.cluster, self.device = cluster, device
        self.ensemble = ensemble or device.startswith("cuda")
        self.options = task_options(device, cluster)
        self.workers = max(1, int(cluster.gpus if device.startswith("cuda") else cluster.cpus))

    def tasks(self, jobs: Sequence[TrainJob]) -> list[list[TrainJob]]:
        """How ``jobs`` are split into tasks."""
        if self.ensemble:  # groups small enough that every GPU (or CPU) gets one
            from deepfn.au.ensemble import group_jobs

            return group_jobs(jobs, max(1, min(MAX_MODELS, -(-len(jobs) // self.workers))))
        return batches(jobs, self.workers * TASKS_PER_CPU)

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        if not jobs:
            return
        ray = require_ray()
        refs = put_subjects(jobs, ray.put)
        remote = ray.remote(train_task).options(**self.options)
        pending = {remote.remote(group, {k: refs[k] for k in set().union(
            *map(subjects_of, group))}, self.ensemble) for group in self.tasks(jobs)}
        try:
            while pending:
                done, rest = ray.wait(list(pending), num_returns=1)
                pending = set(rest)
                for ref in done:
                    try:
                        results = ray.get(ref)
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                            ray.exceptions.OutOfMemoryError) as exc:
                        raise DeepFNError(
                            f"experiments: a Ray worker died {MAX_RETRIES + 1} times running "
                            f"models ({exc.__class__.__name__}); the finished runs are kept: "
                            "rerun the stage (see the worker logs under /tmp/ray)") from exc
                    for result in results:
                        on_result(result)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def put_subjects(jobs: Sequence[TrainJob], put: Callable[[Arrays], Any]
                 ) -> dict[SubjectKey, Any]:
    """Each subject the jobs read, read from disk and put into the object store once."""
    return {k: put(_arrays(*k)) for k in sorted(set().union(*map(subjects_of, jobs)))}
