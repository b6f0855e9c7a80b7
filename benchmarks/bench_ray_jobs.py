"""Classifier jobs on Ray (``compute.engine: ray``) against this machine's ``auto`` strategy.

    .venv/bin/python benchmarks/bench_ray_jobs.py [--models 16] [--epochs 3] \\
        [--out benchmarks/results/ray_jobs.json]

The same default-profile-sized jobs as ``bench_trainer.py`` (64x64 synthetic frames, 4 train
subjects x 150 frames, 2 validation, 2 test subjects), fp32, no compile:

``local``     wall seconds of ``make_strategy("auto", ...)`` (a process pool of one thread per
              core when there are 2+ cores, its start-up included), as the stage runs it;
``ray_cold``  a local Ray cluster on 127.0.0.1 (its start apart, ``cluster_start_s``), wall
              seconds of :class:`deepfn.au.ray_jobs.RayStrategy` (subjects into the object store,
              batches of jobs as tasks on the workers Ray started with the cluster, each
              importing torch on its first task; results back to this driver);
``ray_warm``  the same jobs again on that cluster (warm worker processes);
``identical`` every job's validation F1 history and test tables equal to the local ones
              (abs 1e-6).

Writes JSON with the machine's load averages: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from benchmarks.bench_trainer import TEST_S, TRAIN_S, VAL_S, synthetic_corpus  # noqa: E402
from deepfn.au.ray_jobs import RayStrategy  # noqa: E402
from deepfn.au.strategies import Strategy, available_cores, make_strategy  # noqa: E402
from deepfn.au.trainer import ClassifierTrainConfig, JobResult, TrainJob  # noqa: E402
from deepfn.compute.engine import ray_session  # noqa: E402
from deepfn.utils.io import write_json  # noqa: E402


def _jobs(corpus: str, n: int, epochs: int) -> list[TrainJob]:
    cfg = ClassifierTrainConfig(epochs=epochs, batch_size=32, precision="fp32")
    return [TrainJob(f"m{i}", corpus, TRAIN_S, VAL_S, (("all", TEST_S),), (1, 2, 4, 6, 12),
                     i, cfg) for i in range(n)]


def _timed(strategy: Strategy, jobs: list[TrainJob]) -> tuple[float, dict[str, JobResult]]:
    out: dict[str, JobResult] = {}
    t0 = time.perf_counter()
    with strategy:
        strategy.run(jobs, lambda r: out.__setitem__(r.key, r))
    return time.perf_counter() - t0, out


def _same(a: dict[str, JobResult], b: dict[str, JobResult]) -> bool:
    return a.keys() == b.keys() and all(
        all(math.isclose(x, y, abs_tol=1e-6) or (math.isnan(x) and math.isnan(y))
            for x, y in zip(a[k].val_f1, b[k].val_f1, strict=True))
        and a[k].tests == b[k].tests for k in a)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_jobs.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _jobs(synthetic_corpus(Path(tmp)), args.models, args.epochs)
        local = make_strategy("auto", 0, len(jobs), device=jobs[0].config.device)
        local_s, want = _timed(local, jobs)
        t0 = time.perf_counter()
        with ray_session(None, num_cpus=available_cores()) as cluster:
            start_s = time.perf_counter() - t0
            cold_s, cold = _timed(RayStrategy(cluster, "cpu"), jobs)
            warm_s, warm = _timed(RayStrategy(cluster, "cpu"), jobs)
    result = {
        "machine": platform.processor() or platform.machine(), "cores": available_cores(),
        "load_avg_1_5_15": list(os.getloadavg()), "models": args.models,
        "epochs": args.epochs, "local_strategy": local.name, "local_s": round(local_s, 2),
        "cluster_start_s": round(start_s, 2), "ray_cold_s": round(cold_s, 2),
        "ray_warm_s": round(warm_s, 2), "ray_cold_over_local": round(cold_s / local_s, 3),
        "ray_warm_over_local": round(warm_s / local_s, 3),
        "identical": _same(want, cold) and _same(want, warm)}
    write_json(args.out, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
