"""How the many small training jobs are spread over the machine (``experiments.strategy``).

* ``sequential`` -- one job after another in this process (all cores for each job);
* ``process`` -- a pool of ``experiments.workers`` spawned processes (0 = one per core), one
  torch thread each, every worker training its own models (tiny convolutions barely scale
  across threads, and a busy machine makes two-thread runs collapse; one thread per process
  does not);
* ``ensemble`` -- up to 128 models of one shape trained at once as one vectorized model
  (:mod:`deepfn.au.ensemble`: ``torch.func.stack_module_state`` + ``functional_call`` +
  ``vmap``), on the stage's device: one LeNet-5 at batch 64 is launch-bound on a GPU;
* ``auto`` -- ``ensemble`` on CUDA; on a CPU ``process`` when there is more than one core and
  job and the run trains at least :data:`POOL_MIN_IMAGES` images (below that, spawning the
  workers -- ~3 s of importing torch -- costs more than they save), else ``sequential``;
* ``ray`` -- with ``compute.engine: ray`` (a cluster given to :func:`make_strategy`), whatever
  ``experiments.strategy`` says: batches of jobs as Ray tasks on CPU workers, one ensemble per
  task on GPU workers (or everywhere with ``strategy: ensemble``); :mod:`deepfn.au.ray_jobs`.

A strategy can be started once and reused (``with strategy: strategy.run(...)`` several times):
``start(warm=...)`` spawns the pool and compiles the listed graphs in every worker
(:func:`~deepfn.au.trainer.warm_up`), so the one-time cost is paid -- and can be timed -- apart
from the training.  ``run`` without ``start`` starts and stops a pool around itself.

Each run reads every subject once per process: the sequential strategy keeps one
:class:`~deepfn.au.trainer.SubjectCache` for the run, each pool worker one per run (a pool reused
across runs starts a new cache with each run, so it never serves files as an earlier run read
them).

Workers only train: they return :class:`~deepfn.au.trainer.JobResult` (histories + test tables)
and the caller's ``on_result`` -- in the main process -- does all MLflow logging, so the sqlite
store has a single writer.  Results do not depend on the strategy (same seeds; float reduction
order may differ in the last bits).

On 2 CPU cores the ensemble measured 0.7-2.3x the one-model loop (benchmarks/gpu_check.py
``--device cpu --tiny``), below the ``process`` pool, so ``auto`` picks it on CUDA only.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING

from deepfn.au.trainer import JobResult, SubjectCache, TrainJob, train_job, warm_up
from deepfn.errors import DeepFNError

if TYPE_CHECKING:
    from deepfn.compute.engine import RayCluster

__all__ = ["Strategy", "SequentialStrategy", "ProcessStrategy", "EnsembleStrategy", "STRATEGIES",
           "make_strategy",
           "available_cores", "WarmUp", "POOL_MIN_IMAGES"]

OnResult = Callable[[JobResult], None]
# A pool's start-up (~3 s) against ~5e-5 s saved per image by two one-thread workers over one
# two-thread process (eager bf16, 2 cores; docs/protocol.md).
POOL_MIN_IMAGES = 50_000
# What to compile ahead of the first job: (n_aus, image_size, bf16, batch_size) per graph.
WarmUp = tuple[tuple[int, int, bool, int], ...]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Strategy(ABC):
    """Runs jobs and hands each result to ``on_result`` in the calling process, as they finish.

    An exception from a job or from ``on_result`` stops the run (pending jobs are cancelled).
    """

    name: str = ""
    workers: int = 1  # models trained at the same time

    @abstractmethod
    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None: ...

    def start(self, warm: WarmUp = ()) -> None:
        """Get ready to train: start workers, compile ``warm``'s graphs (no-op by default)."""
        return None

    def close(self) -> None:
        """Release what :meth:`start` started."""
        return None

    def __enter__(self) -> Strategy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EnsembleStrategy(Strategy):
    """Jobs grouped by shape (:func:`~deepfn.au.ensemble.group_jobs`), each group trained as
    one vectorized model on ``device`` (the jobs' own ``config.device``)."""

    name = "ensemble"

    def __init__(self, max_models: int = 128) -> None:
        self.max_models = max_models

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        from deepfn.au.ensemble import group_jobs, train_jobs

        cache = SubjectCache()
        for group in group_jobs(jobs, self.max_models):
            self.workers = len(group)
            for result in train_jobs(group, group[0].config.compute, cache=cache):
                on_result(result)


class SequentialStrategy(Strategy):
    name = "sequential"

    def start(self, warm: WarmUp = ()) -> None:
        for spec in warm:
            warm_up(*spec)

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        cache = SubjectCache()
        for job in jobs:
            on_result(train_job(job, cache))


def _init_worker(threads: int, warm: WarmUp = ()) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    for spec in warm:
        warm_up(*spec)


# This worker process's subject cache and the run it belongs to (set by _train_in_worker).
_worker_cache: tuple[str, SubjectCache] | None = None


def _train_in_worker(job: TrainJob, run: str) -> JobResult:
    """:func:`train_job` with this worker's cache for run ``run`` (a new run: a new cache)."""
    global _worker_cache
    if _worker_cache is None or _worker_cache[0] != run:
        _worker_cache = (run, SubjectCache())
    return train_job(job, _worker_cache[1])


def _ready() -> int:
    time.sleep(0.05)  # long enough that one idle worker cannot take every probe
    return os.getpid()


class ProcessStrategy(Strategy):
    """A spawn-context process pool; each worker keeps a subject cache across a run's jobs."""

    name = "process"

    def __init__(self, workers: int, threads_per_worker: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = threads_per_worker
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int, warm: WarmUp = ()) -> ProcessPoolExecutor:
        ctx = mp.get_context("spawn")  # fork + torch threads can deadlock
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.threads, warm))

    def start(self, warm: WarmUp = ()) -> None:
        """Spawn every worker now and wait until each has imported torch and compiled ``warm``."""
        if self._pool is not None:
            return
        self._pool = self._new_pool(self.workers, warm)
        seen: set[int] = set()
        while len(seen) < self.workers:  # a probe runs only after its worker's initializer
            seen.update(f.result() for f in [self._pool.submit(_ready)
                                             for _ in range(self.workers)])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        if not jobs:
            return
        if self._pool is not None:
            try:
                self._drain(self._pool, jobs, on_result)
            except BaseException:
                self._pool = None  # _drain shut it down
                raise
            return
        with self._new_pool(min(self.workers, len(jobs))) as pool:
            self._drain(pool, jobs, on_result)

    @staticmethod
    def _drain(pool: ProcessPoolExecutor, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        run = uuid.uuid4().hex
        pending: set[Future[JobResult]] = {pool.submit(_train_in_worker, j, run) for j in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_result(fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


STRATEGIES: dict[str, type[Strategy]] = {"sequential": SequentialStrategy,
                                         "process": ProcessStrategy,
                                         "ensemble": EnsembleStrategy}


def make_strategy(name: str, workers: int, n_jobs: int, images: float = math.inf, *,
                  device: str, cluster: RayCluster | None = None) -> Strategy:
    """Resolve ``experiments.strategy`` / ``experiments.workers`` (0 = one per core) for a run of
    ``n_jobs`` models and ``images`` training images in all on ``device`` (resolved, e.g.
    ``cuda:0``); with a Ray ``cluster`` (``compute.engine: ray``) the ``ray`` strategy on it."""
    if cluster is not None:
        from deepfn.au.ray_jobs import RayStrategy

        return RayStrategy(cluster, device, ensemble=name == "ensemble")
    cores = available_cores()
    n_workers = workers or cores
    if name == "auto" and device.startswith("cuda"):
        name = "ensemble"
    if name == "auto":
        pool = cores > 1 and n_jobs > 1 and n_workers > 1 and images >= POOL_MIN_IMAGES
        name = "process" if pool else "sequential"
    if name == "process" and device != "cpu":
        raise DeepFNError(f"experiments.strategy: process trains on CPU workers but "
                          f"compute.device is {device}; use ensemble or sequential (or auto)")
    if name == "sequential":
        return SequentialStrategy()
    if name == "process":
        return ProcessStrategy(n_workers)
    if name == "ensemble":
        return EnsembleStrategy()
    raise ValueError(f"unknown strategy {name!r}; known: auto, {', '.join(STRATEGIES)}")
