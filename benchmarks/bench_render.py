"""Benchmark of the synthetic renderer: frames/s of ``render_faces`` and of ``synthesize_corpus``.

    .venv/bin/python benchmarks/bench_render.py            # writes benchmarks/results/render.json

Reports wall-clock frames/s and CPU-time frames/s (process CPU seconds, all threads), plus the
load average, because on a shared machine wall-clock numbers depend on the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepfn.data.synth import render_faces, roster_metadata, synthesize_corpus
from deepfn.data.synth.generate import plan_subject

__all__ = ["bench_render_faces", "bench_synthesize", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "render.json"


def _inputs(batch: int, seed: int = 0) -> tuple[dict, torch.Tensor, dict]:
    """A realistic batch: frames of several BP4D/DISFA-like people (identity, AUs, nuisance)."""
    meta = roster_metadata(["F001", "M001", "F002", "SN001"], seed=seed)
    plans = [plan_subject(row, seed=seed, frames_per_sequence=30) for _, row in meta.iterrows()]
    idx = np.random.default_rng(seed).integers(0, 240, batch)
    who = np.arange(batch) % len(plans)
    ident = {k: torch.tensor([plans[w].identity[k] for w in who], dtype=torch.float32)
             for k in plans[0].identity}
    aus = torch.from_numpy(np.stack([plans[w].intensity[i] for w, i in zip(who, idx,
                                                                           strict=True)]))
    nuis = {k: torch.from_numpy(np.stack([plans[w].nuisance[k][i]
                                          for w, i in zip(who, idx, strict=True)]))
            for k in plans[0].nuisance}
    return ident, aus.float(), nuis


def bench_render_faces(batch: int = 256, size: int = 128, repeats: int = 5) -> dict:
    ident, aus, nuis = _inputs(batch)
    render_faces(ident, aus, nuis, size)  # warm-up: caches, allocator
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        render_faces(ident, aus, nuis, size)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return {"batch": batch, "size": size, "repeats": repeats,
            "frames_per_s": round(batch / float(np.median(walls)), 1),
            "frames_per_s_best": round(batch / min(walls), 1),
            "frames_per_cpu_s": round(batch / float(np.median(cpus)), 1)}


def bench_synthesize(subjects: list[str], frames_per_sequence: int = 30,
                     size: int = 128) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), time.process_time()
        synthesize_corpus(Path(tmp), subjects, seed=0, frames_per_sequence=frames_per_sequence,
                          image_size=size, progress=False)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    frames = sum(8 * frames_per_sequence for _ in subjects)
    return {"subjects": subjects, "frames_per_sequence": frames_per_sequence, "size": size,
            "frames": frames, "seconds": round(wall, 2),
            "frames_per_s": round(frames / wall, 1), "frames_per_cpu_s": round(frames / cpu, 1)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--subjects", default="F001,M001,SN001")
    ap.add_argument("--frames-per-sequence", type=int, default=30)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    result = {
        "render_faces": bench_render_faces(args.batch, args.size, args.repeats),
        "synthesize_corpus": bench_synthesize(args.subjects.split(","),
                                              args.frames_per_sequence, args.size),
        "machine": {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count(),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "platform": platform.platform()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None
                                                        else sys.argv[1:])]),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
