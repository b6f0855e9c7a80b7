"""Probe: one LeNet-5 training step, one thread, in several layouts (docs/protocol.md).

    .venv/bin/python research/probe_trainer_step.py [--variants shipped nchw fp32 ...] \\
        [--threads 1] [--batch 64] [--profile]

Each variant runs in its own process (so inductor and thread settings don't leak between them)
and prints ms per step (gather + compiled forward/loss + backward + fused Adam), best of 3 x 100
steps after 20 warm-up steps.  Variants:

* ``shipped``: what ``deepfn.au.trainer`` does (channels-last, bf16 autocast, compiled loss);
* ``nchw``: the same in NCHW;  ``fp32``: channels-last without autocast;
* ``eager``: the shipped layout without torch.compile;  ``plain``: fp32 NCHW eager;
* ``pool_reshape`` / ``pool_slices``: the shipped step with ``avg_pool2d`` written as a
  reshape-mean or as four strided slices (the same numbers, other kernels).

``--profile`` prints the shipped step's per-kernel profile (inductor's kernel profiler).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

VARIANTS = ("shipped", "nchw", "fp32", "eager", "plain", "pool_reshape", "pool_slices")


def _pool(kind: str):
    import torch.nn.functional as F

    def reshape(x):
        b, c, h, w = x.shape
        h2, w2 = h // 2, w // 2
        return x[:, :, :2 * h2, :2 * w2].reshape(b, c, h2, 2, w2, 2).mean((3, 5))

    def slices(x):
        h2, w2 = 2 * (x.shape[2] // 2), 2 * (x.shape[3] // 2)
        return (x[:, :, 0:h2:2, 0:w2:2] + x[:, :, 1:h2:2, 0:w2:2] + x[:, :, 0:h2:2, 1:w2:2]
                + x[:, :, 1:h2:2, 1:w2:2]) * 0.25

    return {"pool_reshape": reshape, "pool_slices": slices}.get(kind,
                                                                lambda x: F.avg_pool2d(x, 2))


def one(variant: str, threads: int, batch: int, profile: bool) -> float:
    import torch
    import torch.nn.functional as F

    from deepfn.au.lenet import LeNet5, masked_bce_with_logits

    if profile:
        import torch._inductor.config as ic
        ic.cpp.enable_kernel_profile = True
    torch.set_num_threads(threads)
    pool = _pool(variant)

    class Probe(LeNet5):
        def forward(self, x):
            x = pool(F.relu(self.conv1(x)))
            x = pool(F.relu(self.conv2(x)))
            x = F.relu(self.fc1(torch.flatten(x, 1)))
            return self.fc3(F.relu(self.fc2(x)))

    cl = variant not in ("nchw", "plain")
    bf16 = variant not in ("fp32", "plain")
    fmt = torch.channels_last if cl else torch.contiguous_format
    torch.manual_seed(0)
    model = Probe(12, 64).to(memory_format=fmt)

    def loss(xb, yb):
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits = model(xb)
        return masked_bce_with_logits(logits, yb)

    fn = loss if variant in ("eager", "plain") else torch.compile(loss, dynamic=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=variant != "plain")
    x = torch.randn(600, 1, 64, 64).contiguous(memory_format=fmt)
    y = (torch.rand(600, 12) < 0.3).float()
    idx = torch.randperm(600)[:batch]

    def step():
        out = fn(x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()

    for _ in range(20):
        step()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(100):
            step()
        best = min(best, (time.perf_counter() - t0) / 100)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof
        with prof(activities=[ProfilerActivity.CPU]) as p:
            for _ in range(50):
                step()
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        s = one(a.one, a.threads, a.batch, a.profile)
        print(f"{a.one:13s} {s * 1000:6.2f} ms/step  {a.batch / s:7.0f} img/s", flush=True)
        return 0
    for v in a.variants:
        subprocess.run([sys.executable, __file__, "--one", v, "--threads", str(a.threads),
                        "--batch", str(a.batch)] + (["--profile"] if a.profile else []),
                       check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
