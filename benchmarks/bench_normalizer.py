"""Normalizer benchmark: step throughput, achieved GFLOP/s, augmentation share, warm start.

    .venv/bin/python benchmarks/bench_normalizer.py              # ~3-5 min on 2 cores
    .venv/bin/python benchmarks/bench_normalizer.py --quick      # fewer steps, no paper config

Writes ``benchmarks/results/normalizer.json``:

``steps``       per profile config (smoke, default, paper): ms per training step (template batch
                + subject batch, Eq. 1 + Adam; median and min), images/s, FLOPs per step
                (counted with ``torch.utils.flop_counter``) and achieved GFLOP/s (median step;
                ``_best``: fastest step -- on a shared machine the median can be several times
                the min), the augmentation's share of the step.  The paper config runs at a
                reduced batch (a 64+64 step is ~3 TFLOP).
``matmul``      a plain 2048x2048 bf16 / fp32 matmul in the same process: the machine's ceiling.
``warm_start``  default profile: from-scratch training for ``normalize.iterations`` vs
                fine-tuning from an 800-iteration template pretrain; iterations and seconds the
                warm run needs to reach the scratch run's final losses (10-iteration means).

Data: ``data/preprocessed/ae`` + ``data/template`` when ``dvc repro template`` has made them,
else two subjects synthesized on the fly with the project's renderer.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepfn.config.load import settings_from_dict  # noqa: E402
from deepfn.config.settings import Settings  # noqa: E402
from deepfn.data.corpus import read_subject, subject_ids  # noqa: E402
from deepfn.normalizer.augment import augment  # noqa: E402
from deepfn.normalizer.jobs import init_model, read_template  # noqa: E402
from deepfn.normalizer.model import ArchConfig, count_parameters  # noqa: E402
from deepfn.normalizer.train import (  # noqa: E402
    Adam,
    NormalizerTrainConfig,
    _step,
    fit_normalizer,
    frames_to_tensor,
)

OUT = Path("benchmarks/results/normalizer.json")


def _settings(profile: str) -> Settings:
    """The profile's values as-is (``params.yaml`` overrides are not benchmarked)."""
    return settings_from_dict({"profile": profile}, f"profile {profile}")


def _timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    return 2 * n**3 / min(_timed(lambda: a @ b, repeats)) / 1e9


def step_flops(model, opt, frames, cfg, gen) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _step(model, opt, frames, frames, cfg, gen)
    return int(counter.get_total_flops())


def bench_step(profile: str, steps: int, batch: int | None = None) -> dict:
    """Time ``steps`` training steps of ``profile``'s architecture on random frames."""
    st = _settings(profile)
    arch = ArchConfig.from_settings(st.normalize, st.preprocess)
    cfg = NormalizerTrainConfig.from_settings(st.normalize, iterations=steps)
    if batch is not None:
        cfg = NormalizerTrainConfig(**{**cfg.__dict__, "batch_size": batch})
    model = init_model(arch, 0)
    if cfg.precision == "bf16":
        model.to(memory_format=torch.channels_last)
    opt = Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    frames = torch.rand(2 * cfg.batch_size, 1, arch.size, arch.size)  # = one augment call
    gen = torch.Generator().manual_seed(0)
    flops = step_flops(model, opt, frames, cfg, gen)  # also the warm-up step
    times = _timed(lambda: _step(model, opt, frames, frames, cfg, gen), steps)
    aug = _timed(lambda: augment(frames, cfg.augment, gen), max(3, steps))
    step = float(np.median(times))
    return {
        "arch": arch.to_dict(), "parameters": count_parameters(model),
        "batch": f"{cfg.batch_size}+{cfg.batch_size}", "precision": cfg.precision,
        "steps": steps, "ms_per_step_median": 1e3 * step, "ms_per_step_min": 1e3 * min(times),
        "images_per_s": 2 * cfg.batch_size / step,
        "images_per_s_best": 2 * cfg.batch_size / min(times), "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step / 1e9, "achieved_gflops_best": flops / min(times) / 1e9,
        "augment_ms": 1e3 * float(np.median(aug)), "augment_share": float(np.median(aug)) / step,
    }


def _corpus(tmp: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(template frames, subject frames, where from) at the default profile's AE size."""
    size = _settings("default").preprocess.ae_size
    data, template = Path("data/preprocessed/ae"), Path("data/template")
    if (template / "template.json").is_file() and (data / "subjects.csv").is_file():
        tmpl, _ = read_template(template)
        other = next(s for s in subject_ids(data) if s != tmpl.subject)
        subj = read_subject(data, other)
        if subj.images.shape[-1] == size:
            return tmpl.images, subj.images, f"{data} ({tmpl.subject} -> {other})"
    from deepfn.data.preprocess import equalize_resize
    from deepfn.data.synth import synthesize_corpus

    synthesize_corpus(tmp, ["F001", "M001"], seed=0, identity_strength=1.0,
                      frames_per_sequence=30, image_size=128)
    imgs = [equalize_resize(read_subject(tmp, s).images, [size])[0] for s in ("F001", "M001")]
    return imgs[0], imgs[1], "synthesized F001 (template) -> M001"


def _first_reaching(curve: list[float], target: float, window: int = 10) -> int | None:
    c = np.convolve(curve, np.ones(window) / window, mode="valid")
    hit = np.flatnonzero(c <= target)
    return int(hit[0] + window) if len(hit) else None


def warm_vs_scratch(pretrain_iterations: int | None = None) -> dict:
    st = _settings("default")
    s = st.normalize
    arch = ArchConfig.from_settings(s, st.preprocess)
    pre_its = st.pretrain.iterations if pretrain_iterations is None else pretrain_iterations
    with tempfile.TemporaryDirectory() as tmp:
        template, subject, source = _corpus(Path(tmp))
    y, x = frames_to_tensor(template), frames_to_tensor(subject)
    runs = {}
    t0 = time.perf_counter()
    pre = init_model(arch, 1)
    fit_normalizer(pre, y, None, NormalizerTrainConfig.from_settings(s, iterations=pre_its),
                   torch.Generator().manual_seed(2))
    pre.copy_template_decoder_to_subject()
    pretrain_s = time.perf_counter() - t0
    cfg = NormalizerTrainConfig.from_settings(s)
    for name in ("scratch", "warm"):
        model = init_model(arch, 3) if name == "scratch" else pre
        t0 = time.perf_counter()
        state = fit_normalizer(model, y, x, cfg, torch.Generator().manual_seed(4))
        runs[name] = {"seconds": time.perf_counter() - t0, "loss_subject": state.loss_subject,
                      "loss_template": state.loss_template}
    sc, wa = runs["scratch"], runs["warm"]
    total = [a + b for a, b in zip(sc["loss_subject"], sc["loss_template"], strict=True)]
    wtotal = [a + b for a, b in zip(wa["loss_subject"], wa["loss_template"], strict=True)]
    target_x, target_total = float(np.mean(sc["loss_subject"][-10:])), float(np.mean(total[-10:]))
    its_x = _first_reaching(wa["loss_subject"], target_x)
    its_total = _first_reaching(wtotal, target_total)
    per_it = wa["seconds"] / cfg.iterations
    n_subjects = len(st.synthesize.subjects)
    return {
        "data": source, "iterations": cfg.iterations, "pretrain_iterations": pre_its,
        "pretrain_seconds": pretrain_s, "scratch_seconds": sc["seconds"],
        "warm_seconds": wa["seconds"],
        "scratch_final_loss_subject": target_x, "scratch_final_loss_total": target_total,
        "warm_final_loss_subject": float(np.mean(wa["loss_subject"][-10:])),
        "warm_final_loss_total": float(np.mean(wtotal[-10:])),
        "warm_iterations_to_scratch_final_subject_loss": its_x,
        "warm_iterations_to_scratch_final_total_loss": its_total,
        "warm_seconds_to_scratch_final_total_loss": None if its_total is None
        else its_total * per_it,
        "pretrain_seconds_per_subject_amortized": pretrain_s / n_subjects,
        "curves_every_10": {k: [float(np.mean(v[i:i + 10])) for i in range(0, len(v), 10)]
                            for k, v in (("scratch_subject", sc["loss_subject"]),
                                         ("warm_subject", wa["loss_subject"]),
                                         ("scratch_total", total), ("warm_total", wtotal))},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps, skip the paper config")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    result: dict = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "load_avg_start": list(_loadavg())},
        "matmul_gflops": {"bf16": matmul_gflops(torch.bfloat16),
                          "fp32": matmul_gflops(torch.float32)},
        "steps": {},
    }
    steps = 5 if args.quick else 12
    result["steps"]["smoke"] = bench_step("smoke", steps)
    result["steps"]["default"] = bench_step("default", steps)
    if not args.quick:
        paper = bench_step("paper", 2, batch=4)
        paper["note"] = ("batch 4+4 (a 64+64 step is ~3 TFLOP: ~16x this step); "
                         "images/s is comparable, ms_per_step is not")
        result["steps"]["paper"] = paper
    for cfg in result["steps"].values():
        ref = result["matmul_gflops"]["bf16" if cfg["precision"] == "bf16" else "fp32"]
        cfg["fraction_of_matmul"] = cfg["achieved_gflops"] / ref
    warm = warm_vs_scratch(pretrain_iterations=200 if args.quick else None)
    step_s = result["steps"]["default"]["ms_per_step_min"] / 1e3  # wall clocks above are noisy
    its = warm["warm_iterations_to_scratch_final_total_loss"]
    warm["at_best_step_time"] = {
        "scratch_seconds": warm["iterations"] * step_s,
        "warm_seconds_to_scratch_final_total_loss": None if its is None else its * step_s}
    result["warm_start"] = warm
    result["machine"]["load_avg_end"] = list(_loadavg())
    result["seconds"] = time.perf_counter() - t_start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"wrote {args.out} in {result['seconds']:.0f} s")
    return 0


def _loadavg() -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ()


def _print(r: dict) -> None:
    mm = r["matmul_gflops"]
    print(f"matmul: bf16 {mm['bf16']:.0f} GFLOP/s, fp32 {mm['fp32']:.0f} GFLOP/s")
    for name, c in r["steps"].items():
        print(f"{name:8s} {c['batch']:>7s} {c['precision']}: {c['ms_per_step_median']:8.1f} ms/step"
              f"  {c['images_per_s']:7.1f} img/s  {c['achieved_gflops']:6.1f} GFLOP/s "
              f"({100 * c['fraction_of_matmul']:.0f}% of matmul)  augment "
              f"{100 * c['augment_share']:.0f}%")
    w = r["warm_start"]
    print(f"warm start: scratch {w['iterations']} its -> total loss "
          f"{w['scratch_final_loss_total']:.4f} in {w['scratch_seconds']:.1f} s; warm reaches it "
          f"after {w['warm_iterations_to_scratch_final_total_loss']} its "
          f"(pretrain {w['pretrain_iterations']} its, {w['pretrain_seconds']:.1f} s once)")


if __name__ == "__main__":
    raise SystemExit(main())
