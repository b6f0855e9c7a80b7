"""Trainer throughput: deepfn's AU trainer vs a plain one-at-a-time eager fp32 loop.

    .venv/bin/python benchmarks/bench_trainer.py [--models 1 8 20] [--epochs 8] \\
        [--out benchmarks/results/trainer.json]

Both sides train the same models on the same 64x64 synthetic data (random frames and labels,
written once to a temporary corpus so the trainer runs its real path): each model sees 4
subjects x 150 train frames, validates on 2 x 30 frames every epoch, keeps the best epoch and
predicts 2 x 60 test frames -- a default-profile job.  Reported per model count, side by side
in one run: aggregate training images/s (epochs x train frames x models / wall seconds).

* baseline: NCHW fp32, ``torch.optim.Adam`` defaults, all threads, one model after another,
  in this (already warm) process;
* trainer: :mod:`deepfn.au.trainer` + the ``auto`` strategy (a process pool with one thread per
  worker when there is more than one core and job, else this process with all threads),
  channels-last, bf16 autocast, fused Adam, forward + loss compiled.  Its one-time start-up
  (spawning the workers, importing torch, compiling -- what a pipeline stage pays once for all
  its models) is timed separately: ``trainer_img_s`` / ``speedup`` are the warm pool,
  ``e2e_img_s`` / ``speedup_e2e`` include the start-up;
* trainer_eager: the same without torch.compile (what small runs use, see
  ``trainer.should_compile``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from deepfn.au.lenet import LeNet5, masked_bce_with_logits
from deepfn.au.metrics import validation_f1
from deepfn.au.protocol import TEST, TRAIN, VAL
from deepfn.au.strategies import available_cores, make_strategy
from deepfn.au.trainer import ClassifierTrainConfig, SubjectCache, TrainJob, part_tensors
from deepfn.data.corpus import AUS, SubjectData, write_manifest, write_subject
from deepfn.utils.io import write_json

SUBJECTS = [f"F{i:03d}" for i in range(1, 9)]
TRAIN_S, VAL_S, TEST_S = tuple(SUBJECTS[:4]), tuple(SUBJECTS[4:6]), tuple(SUBJECTS[6:])


def synthetic_corpus(root: Path, size: int = 64, per_seq: int = 30) -> str:
    rng = np.random.default_rng(0)
    n = 8 * per_seq
    for s in SUBJECTS:
        occ = (rng.random((n, len(AUS))) < 0.3).astype(np.int8)
        write_subject(root, SubjectData(
            s, rng.integers(0, 256, (n, size, size), dtype=np.uint8), occ, occ,
            np.repeat([f"T{i}" for i in range(1, 9)], per_seq),
            np.tile(np.arange(per_seq, dtype=np.int32), 8)))
    write_manifest(root, source="bench", image_size=size, subjects=SUBJECTS)
    return str(root)


def plain_job(corpus: str, seed: int, cfg: ClassifierTrainConfig, cache: SubjectCache) -> int:
    """The textbook loop: fp32, NCHW, default Adam, evaluate every epoch, keep the best."""
    x, y, _ = part_tensors(corpus, TRAIN_S, TRAIN, AUS, cache=cache)
    xv, yv, _ = part_tensors(corpus, VAL_S, VAL, AUS, cache=cache)
    xt, _, _ = part_tensors(corpus, TEST_S, TEST, AUS, cache=cache)
    x, xv, xt = x.contiguous(), xv.contiguous(), xt.contiguous()
    yt = torch.from_numpy(y.astype(np.float32))
    torch.manual_seed(seed)
    model = LeNet5(len(AUS), x.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    best, state = -math.inf, None
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = masked_bce_with_logits(model(x[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            f1 = validation_f1(yv, torch.sigmoid(model(xv)).numpy())
        if state is None or f1 > best:
            best, state = f1, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    with torch.no_grad():
        torch.sigmoid(model(xt))
    return len(x) * cfg.epochs


def trainer_jobs(corpus: str, n: int, cfg: ClassifierTrainConfig) -> list[TrainJob]:
    return [TrainJob(f"m{i}", corpus, TRAIN_S, VAL_S, (("test", TEST_S),), AUS, i, cfg)
            for i in range(n)]


def run_trainer(jobs: list[TrainJob]) -> dict:
    """Start the strategy (timed apart), then train ``jobs`` on it."""
    images = 0

    def on_result(res) -> None:
        nonlocal images
        images += res.images

    cfg = jobs[0].config
    strategy = make_strategy("auto", 0, len(jobs), device=cfg.device)
    warm = ((len(AUS), 64, cfg.precision == "bf16", cfg.batch_size),) if cfg.compile else ()
    t0 = time.perf_counter()
    strategy.start(warm)
    t1 = time.perf_counter()
    try:
        strategy.run(jobs, on_result)
    finally:
        strategy.close()
    t2 = time.perf_counter()
    return {"start_s": t1 - t0, "train_s": t2 - t1, "images": images, "strategy": strategy.name}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, nargs="+", default=[1, 8, 20])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--no-baseline", action="store_true", help="time the trainer only")
    p.add_argument("--out", default="benchmarks/results/trainer.json")
    args = p.parse_args(argv)
    cfg = ClassifierTrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3, precision="bf16")
    results = []
    load0 = os.getloadavg()
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    cache_warm = Path(cache_dir()).is_dir() and any(Path(cache_dir()).iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        corpus = synthetic_corpus(Path(tmp))
        subjects = SubjectCache()  # the baseline reads the corpus once, as the trainer does
        plain_job(corpus, 0, ClassifierTrainConfig(epochs=1), subjects)  # warm-up: imports,
        # first-call costs (this process's are paid here; worker start-up is timed below)
        for n in args.models:
            tr = run_trainer(trainer_jobs(corpus, n, replace(cfg, compile=True)))
            eager = run_trainer(trainer_jobs(corpus, n, cfg))
            row = {"models": n, "images": tr["images"], "strategy": tr["strategy"],
                   "trainer_start_s": round(tr["start_s"], 2),
                   "trainer_s": round(tr["train_s"], 2),
                   "trainer_img_s": round(tr["images"] / tr["train_s"]),
                   "e2e_img_s": round(tr["images"] / (tr["start_s"] + tr["train_s"])),
                   "eager_start_s": round(eager["start_s"], 2),
                   "eager_s": round(eager["train_s"], 2),
                   "eager_img_s": round(eager["images"] / (eager["start_s"]
                                                           + eager["train_s"]))}
            if not args.no_baseline:
                t0 = time.perf_counter()
                base_images = sum(plain_job(corpus, i, cfg, subjects) for i in range(n))
                base_s = time.perf_counter() - t0
                row.update(baseline_s=round(base_s, 2), baseline_img_s=round(base_images / base_s),
                           speedup=round(base_s / tr["train_s"], 2),
                           speedup_e2e=round(base_s / (tr["start_s"] + tr["train_s"]), 2),
                           speedup_eager=round(base_s / (eager["start_s"] + eager["train_s"]),
                                               2))
            results.append(row)
            print(json.dumps(row), flush=True)
    report = {
        "benchmark": "au trainer throughput (64x64, LeNet-5, 600 train frames/model)",
        "machine": {"cores": available_cores(), "torch": torch.__version__,
                    "python": platform.python_version(), "cpu": platform.processor(),
                    "loadavg_start": [round(v, 2) for v in load0],
                    "inductor_cache_warm_at_start": cache_warm,
                    "loadavg_end": [round(v, 2) for v in os.getloadavg()]},
        "config": {"epochs": args.epochs, "batch_size": 64, "train_frames": 600,
                   "val_frames": 60, "test_frames": 120, "precision": "bf16"},
        "results": results,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
