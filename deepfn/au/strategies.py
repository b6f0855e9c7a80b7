"""How the many small training jobs are spread over the machine (``experiments.strategy``).

* ``sequential`` -- one job after another in this process (all cores for each job);
* ``process`` -- a pool of ``experiments.workers`` spawned processes (0 = one per core), one
  torch thread each, every worker training its own models (tiny convolutions barely scale
  across threads, and a busy machine makes two-thread runs collapse; one thread per process
  does not);
* ``auto`` -- ``process`` when there is more than one core and more than one job.

Workers only train: they return :class:`~deepfn.au.trainer.JobResult` (histories + test tables)
and the caller's ``on_result`` -- in the main process -- does all MLflow logging, so the sqlite
store has a single writer.  Results do not depend on the strategy (same seeds; float reduction
order may differ in the last bits).

Extension point: a vectorized-ensemble strategy (``torch.func.stack_module_state`` + ``vmap``,
or grouped convolutions) would subclass :class:`Strategy`, group jobs of equal shape (same AUs,
image size, epochs, train-set size) and train each group as one batched model.  The project's
probe measured it at 0.5-0.9x of ``process`` on 2 CPU cores, so it is not shipped; it may win
on a GPU.  Register it in :data:`STRATEGIES` and add its name to
``ExperimentsSettings.strategy``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from deepfn.au.trainer import JobResult, TrainJob, train_job

__all__ = ["Strategy", "SequentialStrategy", "ProcessStrategy", "STRATEGIES", "make_strategy",
           "available_cores"]

OnResult = Callable[[JobResult], None]


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


class SequentialStrategy(Strategy):
    name = "sequential"

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        for job in jobs:
            on_result(train_job(job))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


class ProcessStrategy(Strategy):
    """A spawn-context process pool; each worker keeps its subject cache across its jobs."""

    name = "process"

    def __init__(self, workers: int, threads_per_worker: int = 1) -> None:
        self.workers = max(1, workers)
        self.threads = threads_per_worker

    def run(self, jobs: Sequence[TrainJob], on_result: OnResult) -> None:
        if not jobs:
            return
        ctx = mp.get_context("spawn")  # fork + torch threads can deadlock
        workers = min(self.workers, len(jobs))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.threads,)) as pool:
            pending: set[Future] = {pool.submit(train_job, j) for j in jobs}
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
                                         "process": ProcessStrategy}


def make_strategy(name: str, workers: int, n_jobs: int) -> Strategy:
    """Resolve ``experiments.strategy`` / ``experiments.workers`` (0 = one per core)."""
    cores = available_cores()
    n_workers = workers or cores
    if name == "auto":
        name = "process" if cores > 1 and n_jobs > 1 and n_workers > 1 else "sequential"
    if name == "sequential":
        return SequentialStrategy()
    if name == "process":
        return ProcessStrategy(n_workers)
    raise ValueError(f"unknown strategy {name!r}; known: auto, {', '.join(STRATEGIES)}")
