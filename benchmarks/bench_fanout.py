"""The normalizer fan-out: ``compute.engine: local`` (``dvc repro normalize``: the stages one by
one, as ``make run`` runs them) against ``ray`` (``deepfn fanout normalize`` on a local cluster of
this machine's cores), and Ray's overhead per task.

    .venv/bin/python benchmarks/bench_fanout.py                    # smoke normalizers, ~5 min
    .venv/bin/python benchmarks/bench_fanout.py --profile default  # the default profile's

In a scratch smoke project (``deepfn smoke-project``: the smoke roster, 14 subjects; with
``--profile default`` the default profile's normalizer settings on that roster):
``dvc repro pretrain`` (untimed), then

``local``     wall seconds of ``dvc repro normalize`` (every normalize@<subject>, one process each);
``ray``       the same models removed and the MLflow store set aside, wall seconds of the fan-out
              (tasks + the driver logging each run and ``dvc commit``), the local cluster's start
              apart; ``identical``: every model file has the local engine's sha256;
``overhead``  on that cluster, after the fan-out (warm workers): a no-op task's round trip
              (median of 50, after the first one, timed apart), a task that takes and returns
              the normalize inputs
              (template, pretrained model, one subject), and the driver's per-subject recording
              (MLflow + ``dvc commit``).

Targets (met / missed): Ray's overhead per task (payload round trip + recording) <= 2 s; with
``--profile default``, ray wall <= 1.2x local.  ``projection`` (docs/cluster.md): the paper
profile's normalize wall time on 1, 8 and 32 GPUs from a per-iteration time
(``benchmarks/results/gpu_check.json``'s best step where it exists, else the CPU step of
``normalizer.json`` scaled to the paper's 64+64 batch) plus the measured per-task overhead.

Writes ``benchmarks/results/fanout_<profile>.json``.  The machine is shared: compare the
``load_avg_*`` fields before trusting a ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepfn.compute.engine import ray_session  # noqa: E402
from deepfn.compute.fanout import DATA, MODELS, PRETRAINED, TEMPLATE, fanout_normalize  # noqa: E402
from deepfn.config import load_settings  # noqa: E402
from deepfn.scaffold import write_smoke_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAPER_ITERATIONS = 50_000
PAPER_SUBJECTS = 67  # 40 BP4D + 27 DISFA
TARGET_OVERHEAD_S = 2.0
TARGET_RATIO = 1.2


def _run(args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def _shas(project: Path) -> dict[str, str]:
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((project / MODELS).glob("*.pt"))}


def _set(project: Path, **compute: Any) -> None:
    import yaml

    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["compute"].update(compute)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _overhead(project: Path, subject: str) -> dict[str, float]:
    import ray

    @ray.remote(num_cpus=1)
    def noop(x: Any = None) -> Any:
        return x

    t0 = time.perf_counter()
    ray.get(noop.remote())
    first = time.perf_counter() - t0
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        ray.get(noop.remote())
        times.append(time.perf_counter() - t0)
    payload = {p.relative_to(project).as_posix(): p.read_bytes()
               for p in [*sorted((project / TEMPLATE).glob("*")), project / PRETRAINED,
                         project / DATA / f"{subject}.npz"] if p.is_file()}
    size = sum(len(v) for v in payload.values())
    ptimes = []
    for _ in range(10):
        t0 = time.perf_counter()
        ray.get(noop.remote(payload))
        ptimes.append(time.perf_counter() - t0)
    return {"first_task_s": first, "noop_round_trip_ms": statistics.median(times) * 1e3,
            "payload_bytes": size, "payload_round_trip_ms": statistics.median(ptimes) * 1e3}


def _per_iteration_s() -> tuple[float, str]:
    gpu = ROOT / "benchmarks/results/gpu_check.json"
    if gpu.is_file():
        data = json.loads(gpu.read_text())
        ae = data.get("autoencoder", {})
        best = [r for r in ae.get("variants", []) if r.get("variant") == ae.get("best")]
        if best and data.get("environment", {}).get("device", "").startswith("cuda"):
            return best[0]["ms"] / 1e3, f"gpu_check.json best step ({ae['best']})"
    cpu = json.loads((ROOT / "benchmarks/results/normalizer.json").read_text())
    step = cpu["steps"]["paper"]
    scale = 128 / sum(int(b) for b in step["batch"].split("+"))
    return (step["ms_per_step_min"] * scale / 1e3,
            f"CPU projection: normalizer.json paper step at {step['batch']} x {scale:g}")


def assumed_gpu_iteration_s(fraction: float = 0.4, peak_tflops: float = 790.0) -> float:
    """A stand-in until the GPU check has run: the paper step's FLOPs (normalizer.json, counted
    at 4+4 and scaled to 64+64) at ``fraction`` of an H200's bf16 dense peak."""
    cpu = json.loads((ROOT / "benchmarks/results/normalizer.json").read_text())
    step = cpu["steps"]["paper"]
    scale = 128 / sum(int(b) for b in step["batch"].split("+"))
    return step["gflop_per_step"] * scale / (fraction * peak_tflops * 1e3)


def projection(per_iteration_s: float, overhead_s: float,
               gpus: tuple[int, ...] = (1, 8, 32), subjects: int = PAPER_SUBJECTS,
               iterations: int = PAPER_ITERATIONS) -> dict[str, float]:
    """Hours for ``subjects`` normalizers of ``iterations`` on N GPUs, one task per GPU at a
    time: ceil(subjects / N) waves of (iterations x per-iteration time + per-task overhead)."""
    task = iterations * per_iteration_s + overhead_s
    return {str(n): math.ceil(subjects / n) * task / 3600 for n in gpus}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=["smoke", "default"], default="smoke")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    out = args.out or ROOT / f"benchmarks/results/fanout_{args.profile}.json"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    result: dict[str, Any] = {
        "profile": args.profile,
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                    "load_avg_start": list(os.getloadavg())},
    }
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        project = write_smoke_project(Path(tmp) / "p", ROOT, dvc=str(BIN / "dvc"))
        if args.profile != "smoke":
            import yaml

            params = yaml.safe_load((project / "params.yaml").read_text())
            params["profile"] = args.profile
            (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        print("dvc repro pretrain ...", flush=True)
        _run([str(BIN / "dvc"), "repro", "pretrain"], project)
        subjects = list(load_settings(project / "params.yaml").synthesize.subjects)
        print(f"local: dvc repro normalize ({len(subjects)} stages) ...", flush=True)
        local_s = _run([str(BIN / "dvc"), "repro", "normalize"], project)
        local = _shas(project)
        shutil.rmtree(project / MODELS)
        shutil.move(project / "mlruns", project / "mlruns.local")
        _set(project, engine="ray")
        settings = load_settings(project / "params.yaml")
        print("ray: local cluster + deepfn fanout normalize ...", flush=True)
        t0 = time.perf_counter()
        cwd = os.getcwd()
        os.chdir(project)
        try:
            with ray_session(None) as cluster:
                start_s = time.perf_counter() - t0
                summary = fanout_normalize(settings, project, upstream=False,
                                           echo=lambda line: print(line, flush=True))
                over = _overhead(project, subjects[0])
        finally:
            os.chdir(cwd)
        ray_s = summary.seconds
        record = statistics.median(summary.record_seconds)
        per_task = over["payload_round_trip_ms"] / 1e3 + record
        it_s, source = _per_iteration_s()
        result.update({
            "subjects": len(subjects),
            "local": {"wall_s": local_s, "per_subject_s": local_s / len(subjects)},
            "ray": {"cluster": f"{cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs",
                    "cluster_start_s": start_s, "wall_s": ray_s,
                    "per_subject_s": ray_s / len(subjects), "logged_runs": summary.logged,
                    "record_per_subject_s": record},
            "ratio_ray_over_local": ray_s / local_s,
            "identical": _shas(project) == local and len(local) == len(subjects),
            "overhead": {**over, "per_task_s": per_task},
            "targets": {
                "overhead": {"what": f"Ray's overhead per task <= {TARGET_OVERHEAD_S} s",
                             "value": per_task, "met": per_task <= TARGET_OVERHEAD_S},
                **({"ratio": {"what": f"default normalizers: ray <= {TARGET_RATIO}x local",
                              "value": ray_s / local_s, "met": ray_s / local_s <= TARGET_RATIO}}
                   if args.profile == "default" else {}),
            },
            "projection": {"per_iteration_s": it_s, "source": source,
                           "iterations": PAPER_ITERATIONS, "subjects": PAPER_SUBJECTS,
                           "per_task_overhead_s": per_task,
                           "hours_on_gpus": projection(it_s, per_task),
                           "assumed_gpu": {
                               "per_iteration_s": assumed_gpu_iteration_s(),
                               "how": "paper step FLOPs at 40% of an H200's 790 TFLOP/s bf16",
                               "hours_on_gpus": projection(assumed_gpu_iteration_s(),
                                                           per_task)}},
        })
    result["machine"]["load_avg_end"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    tmp_out.replace(out)
    print(json.dumps({k: result[k] for k in ("local", "ray", "ratio_ray_over_local",
                                              "identical", "overhead")}, indent=2))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
