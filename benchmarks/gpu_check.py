"""The GPU check: one command, <= 8 minutes on one modern GPU, a JSON and a short table.

    make gpu-check                                  # = python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --device cpu --tiny     # small sizes, < 1 minute (CI)

1. environment -- torch, CUDA, device name and memory;
2. the paper-profile autoencoder (Tables 1-2: 132,527,426 parameters, 128x128, a batch of
   64 template + 64 subject frames; one Eq. 1 step = forward, L1, backward, Adam): ms per
   iteration in fp32 (TF32 matmuls on CUDA), bf16, bf16 + channels_last, and + torch.compile
   (on CUDA); achieved TFLOP/s (FLOPs of one step counted by ``torch.utils.flop_counter``)
   against a bf16 matmul measured in the same run; peak memory; the projected time of 50K
   iterations per subject and of the paper's 40 BP4D + 27 DISFA subjects.  Augmentation is not
   timed (it needs kornia; frames are pre-drawn);
3. LeNet-5 training throughput (images/s, 64x64, 12 AUs, the default profile's job shape):
   one model at a time (the trainer's loop: channels_last, autocast, fused Adam on CUDA, a
   validation pass per epoch) against :func:`deepfn.au.ensemble.fit_ensemble` at K = 1, 8, 32,
   128 -- aggregate images/s and the ratio, side by side;
4. a miniature paper-profile pipeline (``dvc repro`` in a scratch project: the paper's
   width 128 / latent 1024 / 128 px on the smoke roster, a few hundred iterations), timed per
   stage -- only where dvc and mlflow are importable and the device is CUDA, else skipped with
   the reason.

Targets (reported met / missed): the autoencoder's best bf16 step at >= 50 % of the bf16 matmul
rate; the ensemble's aggregate images/s at K = 128 >= 10x the one-model loop.

Parts 1-3 need torch and numpy only (plus rich for the table, if installed): the model modules
are imported without the packages' re-exports (``deepfn.normalizer`` re-exports modules that
need kornia), and nothing imports pydantic, mlflow or dvc.  Writes
``benchmarks/results/gpu_check.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runs from a bare checkout too (no `pip install -e .`)
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PAPER_PARAMS = 132_527_426
PAPER_SUBJECTS = 40 + 27  # BP4D + DISFA
PAPER_ITERATIONS = 50_000
TARGET_AE_FRACTION = 0.5
TARGET_ENSEMBLE_RATIO = 10.0


def model_module(package: str, module: str) -> types.ModuleType:
    """``deepfn.<package>.<module>`` without running ``deepfn/<package>/__init__.py`` (whose
    re-exports import kornia): the package is registered as a bare namespace first."""
    name = f"deepfn.{package}"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(ROOT / "deepfn" / package)]
        sys.modules[name] = pkg
    return importlib.import_module(f"{name}.{module}")


# ------------------------------------------------------------------------------ timing

def timed(step: Callable[[], object], sync: Callable[[], None], iters: int, warmup: int,
          budget_s: float) -> tuple[float, int]:
    """Mean seconds per call after ``warmup`` calls (``iters`` calls, fewer if ``budget_s``
    runs out first) -> (seconds, calls timed)."""
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    n = 0
    while n < iters:
        step()
        n += 1
        if n % 5 == 0:
            sync()
            if time.perf_counter() - t0 > budget_s:
                break
    sync()
    return (time.perf_counter() - t0) / n, n


def matmul_tflops(compute, n: int, iters: int) -> dict[str, float]:
    a = torch.randn(n, n, device=compute.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=compute.device, dtype=torch.bfloat16)
    sec, done = timed(lambda: a @ b, compute.synchronize, iters, 3, 20.0)
    return {"n": n, "iterations": done, "ms": sec * 1e3, "tflops": 2 * n ** 3 / sec / 1e12}


# ------------------------------------------------------------------------------ part 2

def ae_step_fn(model, opt, frames: torch.Tensor, b: int, autocast: Callable, compiled=None):
    """One Eq. 1 iteration on pre-drawn frames ``[y; x]`` (2b, 1, S, S): the normalizer's
    ``_step`` without the augmentation."""
    def forward_loss(inp: torch.Tensor) -> torch.Tensor:
        with autocast():
            h = model.encode(inp, n_template=b)
            y_hat = model.decoder_template(h[:b])
            x_hat = model.decoder_subject(h[b:])
        return ((inp[b:] - x_hat.float()).abs().mean()
                + (inp[:b] - y_hat.float()).abs().mean())

    fl = compiled(forward_loss) if compiled is not None else forward_loss

    def step() -> torch.Tensor:
        loss = fl(frames)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step, forward_loss


def part_autoencoder(compute_mod, device: str, tiny: bool, use_compile: bool,
                     budget_s: float) -> dict[str, Any]:
    model_mod = model_module("normalizer", "model")
    if tiny:
        arch = model_mod.ArchConfig(size=32, width=8, latent=64)
        b, iters, mm_n = 4, 3, 256
    else:
        arch = model_mod.ArchConfig(size=128, width=128, latent=1024)
        b, iters, mm_n = 64, 40, 8192
    out: dict[str, Any] = {"arch": {"size": arch.size, "width": arch.width,
                                    "latent": arch.latent}, "batch": f"{b}+{b}",
                           "fp32_uses_tf32": bool(torch.backends.cuda.matmul.allow_tf32
                                                  and torch.cuda.is_available())}
    base = resolve(compute_mod, device, "fp32")
    out["matmul_bf16"] = matmul_tflops(base, mm_n, 50 if not tiny else 5)
    peak = out["matmul_bf16"]["tflops"]
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2 * b, 1, arch.size, arch.size, generator=g).to(base.device)

    torch.manual_seed(0)
    model = model_mod.DeepFNAutoencoder(arch).to(base.device)
    out["parameters"] = model_mod.count_parameters(model)
    if not tiny:
        out["parameters_match_paper"] = out["parameters"] == PAPER_PARAMS
    flops = step_flops(model, frames, b)
    out["gflop_per_step"] = flops / 1e9
    variants = [("fp32", "fp32", False, False), ("bf16", "bf16", False, False),
                ("bf16+channels_last", "bf16", True, False)]
    if use_compile:
        variants.append(("bf16+channels_last+compile", "bf16", True, True))
    rows = []
    t_part = time.perf_counter()
    for name, precision, cl, comp in variants:
        left = budget_s - (time.perf_counter() - t_part)
        if left < 5:
            rows.append({"variant": name, "skipped": "time budget of part 2 spent"})
            continue
        c = resolve(compute_mod, device, precision)
        torch.manual_seed(0)
        m = model_mod.DeepFNAutoencoder(arch).to(c.device)
        x = frames
        if cl:
            m = m.to(memory_format=torch.channels_last)
            x = frames.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.Adam(m.parameters(), lr=5e-5, betas=(0.5, 0.999), fused=c.is_cuda)
        compiler = torch.compile if comp else None
        step, _ = ae_step_fn(m, opt, x, b, c.autocast, compiler)
        reset_peak(c)
        t0 = time.perf_counter()
        try:
            step()  # first call: compile / cudnn autotune, timed apart
        except Exception as exc:  # noqa: BLE001 -- a failing variant is a result, not a crash
            rows.append({"variant": name, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        c.synchronize()
        first_s = time.perf_counter() - t0
        sec, n = timed(step, c.synchronize, iters, 1 if tiny else 3,
                       max(5.0, min(60.0, left / 2)))
        rows.append({"variant": name, "ms": sec * 1e3, "iterations": n, "first_call_s": first_s,
                     "tflops": flops / sec / 1e12, "of_matmul": flops / sec / 1e12 / peak,
                     "peak_memory_gib": peak_memory(c)})
        del m, opt, step
    out["variants"] = rows
    timed_rows = [r for r in rows if "ms" in r]
    bf16_rows = [r for r in timed_rows if r["variant"].startswith("bf16")]
    best = min(bf16_rows or timed_rows, key=lambda r: r["ms"])
    out["best"] = best["variant"]
    per_subject = best["ms"] / 1e3 * PAPER_ITERATIONS
    out["projection"] = {"iterations_per_subject": PAPER_ITERATIONS,
                         "hours_per_subject": per_subject / 3600,
                         "subjects": PAPER_SUBJECTS,
                         "hours_all_subjects": per_subject * PAPER_SUBJECTS / 3600,
                         "note": "normalize stage only (no pretrain, no augmentation), "
                                 f"at the {best['variant']} step"}
    fraction = max((r["of_matmul"] for r in bf16_rows), default=0.0)
    out["target"] = {"what": f"AE bf16 step >= {TARGET_AE_FRACTION:.0%} of the bf16 matmul rate",
                     "value": fraction, "met": fraction >= TARGET_AE_FRACTION}
    return out


def step_flops(model, frames: torch.Tensor, b: int) -> float:
    """FLOPs of one forward + backward (matmuls and convolutions) by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        h = model.encode(frames, n_template=b)
        loss = ((frames[b:] - model.decoder_subject(h[b:])).abs().mean()
                + (frames[:b] - model.decoder_template(h[:b])).abs().mean())
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def reset_peak(c) -> None:
    if c.is_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(c.device)


def peak_memory(c) -> float | None:
    return torch.cuda.max_memory_allocated(c.device) / 2**30 if c.is_cuda else None


# ------------------------------------------------------------------------------ part 3

def one_model_loop(lenet_mod, metrics_mod, c, bank, y, val_rows, yv, train_rows, epochs,
                   batch_size, seed) -> None:
    """One LeNet-5 the way :func:`deepfn.au.trainer.fit` trains it, on device tensors."""
    torch.manual_seed(seed)
    gen = c.generator(seed)
    model = lenet_mod.LeNet5(y.shape[1], bank.shape[-1]).to(c.device,
                                                             memory_format=c.memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999), fused=c.is_cuda)
    x = bank[train_rows].contiguous(memory_format=c.memory_format)
    yy = y[train_rows]
    xv = bank[val_rows]
    n = len(train_rows)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(c.device)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            with c.autocast():
                logits = model(x[idx])
            loss = lenet_mod.masked_bce_with_logits(logits, yy[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad(), c.autocast():
            probs = torch.sigmoid(model(xv).float()).cpu().numpy()
        metrics_mod.validation_f1(yv, probs, 0.5)


def part_ensemble(compute_mod, device: str, tiny: bool, budget_s: float) -> dict[str, Any]:
    lenet_mod = model_module("au", "lenet")
    metrics_mod = model_module("au", "metrics")
    ens = model_module("au", "ensemble")
    train_config = model_module("au", "config").ClassifierTrainConfig
    c = resolve(compute_mod, device, "bf16")
    if tiny:
        size, n_train, n_val, epochs, ks, loop_models = 16, 64, 16, 2, (1, 4, 8), 2
    else:
        size, n_train, n_val, epochs, ks, loop_models = 64, 600, 60, 4, (1, 8, 32, 128), 8
    n_aus, bs = 12, 64
    g = torch.Generator().manual_seed(0)
    frames = 4 * (n_train + n_val)  # models draw their sets from a shared pool of frames
    bank = torch.randn(frames, 1, size, size, generator=g).to(c.device)
    labels = (torch.rand(frames, n_aus, generator=g) < 0.3).float()
    labels[torch.rand(frames, n_aus, generator=g) < 0.05] = -1.0
    out: dict[str, Any] = {"image_size": size, "train_frames_per_model": n_train,
                           "val_frames_per_model": n_val, "epochs": epochs, "batch_size": bs,
                           "precision": c.precision}

    def sets(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.randperm(frames, generator=torch.Generator().manual_seed(seed))
        return p[:n_train], p[n_train:n_train + n_val]

    ydev = labels.to(c.device)
    # the one-model loop (warm first: cudnn autotuning and the first Adam are not its speed)
    tr, va = sets(0)
    yv = labels[va].numpy().astype(np.int8)
    one_model_loop(lenet_mod, metrics_mod, c, bank, ydev, va.to(c.device), yv,
                   tr.to(c.device), 1, bs, 0)
    c.synchronize()
    t0 = time.perf_counter()
    for k in range(loop_models):
        tr, va = sets(k)
        one_model_loop(lenet_mod, metrics_mod, c, bank, ydev, va.to(c.device),
                       labels[va].numpy().astype(np.int8), tr.to(c.device), epochs, bs, k)
    c.synchronize()
    loop_s = time.perf_counter() - t0
    loop_rate = loop_models * epochs * n_train / loop_s
    out["loop"] = {"models": loop_models, "seconds": loop_s, "img_s": loop_rate}
    rows = []
    t_part = time.perf_counter()
    for k_models in ks:
        if time.perf_counter() - t_part > budget_s:
            rows.append({"k": k_models, "skipped": "time budget of part 3 spent"})
            continue
        specs = []
        for k in range(k_models):
            tr, va = sets(k)
            specs.append(ens.ModelSpec(tr, labels[tr], va, labels[va].numpy().astype(np.int8),
                                       seed=k, config=train_config(
                                           epochs=epochs, batch_size=bs, lr=1e-3)))
        warm = [dataclasses.replace(s, config=dataclasses.replace(s.config, epochs=1))
                for s in specs]
        ens.fit_ensemble(bank, warm, n_aus, c)  # warm-up: autotuning for this K
        c.synchronize()
        t0 = time.perf_counter()
        ens.fit_ensemble(bank, specs, n_aus, c)
        c.synchronize()
        sec = time.perf_counter() - t0
        rate = k_models * epochs * n_train / sec
        rows.append({"k": k_models, "seconds": sec, "img_s": rate, "ratio": rate / loop_rate,
                     "peak_memory_gib": peak_memory(c)})
    out["ensemble"] = rows
    k_max = max((r for r in rows if "ratio" in r), key=lambda r: r["k"], default=None)
    ratio = k_max["ratio"] if k_max else 0.0
    out["target"] = {"what": f"ensemble K={ks[-1]} aggregate img/s >= "
                             f"{TARGET_ENSEMBLE_RATIO:g}x the one-model loop",
                     "k": k_max["k"] if k_max else None, "value": ratio,
                     "met": bool(k_max and k_max["k"] == ks[-1]
                                 and ratio >= TARGET_ENSEMBLE_RATIO)}
    return out


# ------------------------------------------------------------------------------ part 4

def part_pipeline(device: str, tiny: bool, budget_s: float) -> dict[str, Any]:
    """``dvc repro`` of a scratch project at the paper's autoencoder size, timed per stage."""
    missing = [m for m in ("dvc", "mlflow", "pydantic", "kornia")
               if importlib.util.find_spec(m) is None]
    if missing:
        return {"skipped": f"needs the full stack; {', '.join(missing)} not importable here"}
    if tiny:
        return {"skipped": "--tiny: the miniature paper pipeline is for a GPU run"}
    if not (torch.cuda.is_available() and device != "cpu"):
        return {"skipped": "no CUDA device: the paper-size pipeline would take hours on a CPU"}
    import yaml

    from deepfn.scaffold import write_smoke_project

    dvc = str(Path(sys.executable).with_name("dvc"))
    scratch = Path(tempfile.mkdtemp(prefix="deepfn-gpu-check-"))
    project = write_smoke_project(scratch / "project", repo=ROOT, dvc=dvc)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params.setdefault("compute", {})["device"] = device
    params["synthesize"]["image_size"] = 128
    params["preprocess"].update(ae_size=128)
    params["pretrain"].update(iterations=100)
    params["normalize"].update(width=128, latent=1024, iterations=300, batch_size=64,
                               checkpoint_every=100, log_every=50)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = list(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MPLBACKEND": "Agg"}
    rows, t_all = [], time.perf_counter()
    for stage in stages:
        left = budget_s - (time.perf_counter() - t_all)
        if left < 5:
            rows.append({"stage": stage, "skipped": "time budget of part 4 spent"})
            continue
        t0 = time.perf_counter()
        try:
            r = subprocess.run([dvc, "repro", "--single-item", stage], cwd=project, env=env,
                               capture_output=True, text=True, timeout=left)
            status = "ok" if r.returncode == 0 else f"exit {r.returncode}: " + (
                r.stderr.strip().splitlines() or ["?"])[-1][:200]
        except subprocess.TimeoutExpired:
            status = "timed out (time budget of part 4)"
        rows.append({"stage": stage, "seconds": time.perf_counter() - t0, "status": status})
        if status != "ok":
            break
    return {"project": str(project), "stages": rows,
            "seconds": time.perf_counter() - t_all,
            "ok": all(r.get("status") == "ok" for r in rows) and len(rows) == len(stages)}


# ------------------------------------------------------------------------------ driver

def resolve(compute_mod, device: str, precision: str):
    return compute_mod.resolve_compute(device, precision)


def projected_seconds(tiny: bool, parts: set[int], budgets: dict[int, float]) -> float:
    return sum(budgets[p] for p in parts) + (5 if tiny else 30)


def table(result: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    env = result.get("environment", {})
    rows.append(("device", f"{env.get('name')} ({env.get('device')}, torch {env.get('torch')}, "
                           f"CUDA {env.get('cuda')}, {env.get('memory_gib', '-')} GiB)"))
    ae = result.get("autoencoder")
    if ae and "variants" in ae:
        a = ae["arch"]
        rows.append(("AE parameters", f"{ae['parameters']:,} ({a['size']} px, width "
                                      f"{a['width']}, latent {a['latent']}, batch {ae['batch']})"))
        rows.append(("bf16 matmul", f"{ae['matmul_bf16']['tflops']:.3g} TFLOP/s "
                                    f"(n={ae['matmul_bf16']['n']})"))
        for r in ae["variants"]:
            if "ms" in r:
                mem = f", peak {r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] else ""
                rows.append((f"AE step {r['variant']}",
                             f"{r['ms']:.1f} ms, {r['tflops']:.3g} TFLOP/s "
                             f"({r['of_matmul']:.0%} of matmul){mem}"))
            else:
                rows.append((f"AE step {r['variant']}", r.get("skipped") or r.get("error", "")))
        p = ae["projection"]
        rows.append(("AE projection", f"{p['hours_per_subject']:.2f} h/subject x 50K it, "
                                      f"{p['hours_all_subjects']:.1f} h for {p['subjects']}"))
    le = result.get("lenet")
    if le and "loop" in le:
        rows.append(("LeNet one-model loop", f"{le['loop']['img_s']:,.0f} img/s"))
        for r in le["ensemble"]:
            rows.append((f"LeNet ensemble K={r['k']}",
                         f"{r['img_s']:,.0f} img/s ({r['ratio']:.1f}x)" if "img_s" in r
                         else r["skipped"]))
    pl = result.get("pipeline", {})
    if "skipped" in pl:
        rows.append(("mini pipeline", f"skipped: {pl['skipped']}"))
    elif pl:
        rows.append(("mini pipeline", f"{'ok' if pl['ok'] else 'FAILED'} in "
                                      f"{pl['seconds']:.0f} s"))
        for r in pl["stages"]:
            rows.append((f"  {r['stage']}", f"{r.get('seconds', 0):.1f} s "
                                            f"{r.get('status', r.get('skipped'))}"))
    for name, t in result.get("targets", {}).items():
        rows.append((f"target {name}", f"{'MET' if t['met'] else 'MISSED'}: {t['what']} "
                                       f"(got {t['value']:.2f})"))
    rows.append(("wall time", f"{result['seconds']:.0f} s"))
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        return
    t = Table(title="deepfn GPU check")
    t.add_column("check")
    t.add_column("result")
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--tiny", action="store_true", help="small sizes (CPU / CI: < 1 minute)")
    ap.add_argument("--parts", default="1,2,3,4", help="comma-separated parts to run")
    ap.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                    help="time the torch.compile variant (auto: on CUDA only)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_check.json")
    args = ap.parse_args(argv)
    parts = {int(p) for p in args.parts.split(",") if p.strip()}
    compute_mod = model_module("compute", "device")
    from deepfn.errors import DeepFNError

    try:
        c = compute_mod.resolve_compute(args.device, "bf16")
    except DeepFNError as exc:
        print(f"error: {exc}".replace("compute.device", "--device (compute.device)"),
              file=sys.stderr)
        return 2
    c.configure()
    if args.tiny and not c.is_cuda:
        torch.set_num_threads(1)  # tiny CPU ops gain nothing from threads, and a busy CI loses
    budgets = ({1: 1.0, 2: 30.0, 3: 30.0, 4: 0.0} if args.tiny
               else {1: 1.0, 2: 150.0, 3: 120.0, 4: 150.0})
    use_compile = c.is_cuda if args.compile == "auto" else args.compile == "on"
    print(f"gpu_check on {c.device}{' (tiny)' if args.tiny else ''}: parts "
          f"{sorted(parts)}, projected <= {projected_seconds(args.tiny, parts, budgets):.0f} s "
          f"(budgets per part: {budgets})", flush=True)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"command": " ".join(["python benchmarks/gpu_check.py",
                                                   *(argv if argv is not None else sys.argv[1:])]),
                              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "tiny": args.tiny, "commit": _commit()}
    if 1 in parts:
        result["environment"] = compute_mod.environment(c)
    targets: dict[str, Any] = {}
    if 2 in parts:
        print("part 2: paper-profile autoencoder ...", flush=True)
        result["autoencoder"] = part_autoencoder(compute_mod, args.device, args.tiny,
                                                 use_compile, budgets[2])
        targets["autoencoder"] = result["autoencoder"]["target"]
    if 3 in parts:
        print("part 3: LeNet-5 one-model loop vs ensemble ...", flush=True)
        result["lenet"] = part_ensemble(compute_mod, args.device, args.tiny, budgets[3])
        targets["ensemble"] = result["lenet"]["target"]
    if 4 in parts:
        print("part 4: miniature paper pipeline ...", flush=True)
        result["pipeline"] = part_pipeline(args.device, args.tiny, budgets[4])
    result["targets"] = targets
    result["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    tmp.replace(args.out)
    print_table(table(result))
    print(f"wrote {args.out}")
    return 0


def _json_default(o: object) -> object:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
