"""benchmarks/gpu_check.py in its CPU mode (--device cpu --tiny): what CI can run of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
# what the GPU machine does not have: parts 1-3 must not import them
FORBIDDEN = ("pydantic", "kornia", "mlflow", "dvc", "optuna", "deepfn.config", "deepfn.au.trainer")

RUN = """
import runpy, sys
sys.argv = ["gpu_check.py", *{argv!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("IMPORTED", [m for m in {forbidden!r} if m in sys.modules])
"""


def _run(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "gpu_check.json"
    code = RUN.format(argv=[*argv, "--out", str(out)], script=str(SCRIPT), forbidden=FORBIDDEN)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    return proc, out


@pytest.mark.slow
def test_tiny_cpu_run_writes_every_part_without_the_full_stack(tmp_path: Path) -> None:
    proc, out = _run(tmp_path, "--device", "cpu", "--tiny")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "IMPORTED []" in proc.stdout  # parts 1-3 ran on torch + numpy + model modules
    res = json.loads(out.read_text())
    assert res["tiny"] is True and res["environment"]["device"] == "cpu"
    assert res["environment"]["torch"]
    ae = res["autoencoder"]
    assert ae["parameters"] > 0 and ae["gflop_per_step"] > 0
    assert ae["matmul_bf16"]["tflops"] > 0
    names = [r["variant"] for r in ae["variants"]]
    assert names == ["fp32", "bf16", "bf16+channels_last"]  # no compile on a CPU by default
    fp32 = ae["variants"][0]
    assert fp32["ms"] > 0 and 0 < fp32["of_matmul"] and fp32["peak_memory_gib"] is None
    assert all("ms" in r or "skipped" in r for r in ae["variants"])
    p = ae["projection"]
    assert p["subjects"] == 67 and p["hours_all_subjects"] == pytest.approx(
        67 * p["hours_per_subject"])
    le = res["lenet"]
    assert le["loop"]["img_s"] > 0
    done = [r for r in le["ensemble"] if "img_s" in r]
    assert done and done[0]["k"] == 1
    for r in done:
        assert r["ratio"] == pytest.approx(r["img_s"] / le["loop"]["img_s"])
    assert "skipped" in res["pipeline"]
    assert set(res["targets"]) == {"autoencoder", "ensemble"}
    for t in res["targets"].values():
        assert isinstance(t["met"], bool) and t["what"]
    assert "wrote" in proc.stdout and "target ensemble" in proc.stdout


def test_cuda_on_a_machine_without_one_is_one_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "x.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--parts", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "compute.device" in proc.stderr
    assert not out.exists()
