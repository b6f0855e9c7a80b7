"""``python -m deepfn.compute``: which torch build is installed and what it can use.

``make setup`` runs it after installing, so a GPU machine that ended up with a CPU-only torch
says so at once (with the fix) instead of training on the CPU for weeks.  Exit code 0 always:
it informs, it does not judge.
"""

from __future__ import annotations

import shutil
import subprocess

import torch


def main() -> int:
    cuda = torch.version.cuda
    build = f"CUDA {cuda}" if cuda else "CPU-only"
    line = f"torch {torch.__version__} ({build} build)"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        print(f"{line}: compute.device auto -> cuda ({names})")
        return 0
    gpu = shutil.which("nvidia-smi") and subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True).returncode == 0
    if gpu and not cuda:
        print(f"{line}: this machine has an NVIDIA GPU but torch cannot use it; reinstall with "
              "`rm -rf .venv && make setup` on a PyPI index that serves the CUDA build (PyPI's "
              "Linux x86_64 torch is one), not with TORCH_INDEX set to a CPU index")
    else:
        print(f"{line}: compute.device auto -> cpu")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
