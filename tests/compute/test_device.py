"""compute.device resolution, autocast, generators and RNG state (cpu always, cuda if present)."""

from __future__ import annotations

import pytest
import torch

from deepfn.compute.device import (
    Compute,
    resolve_compute,
    resolve_device,
    rng_state,
    set_rng_state,
)
from deepfn.errors import DeepFNError

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not CUDA, reason="no CUDA device on this machine"))]


def test_auto_is_cuda_exactly_when_torch_sees_one() -> None:
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "cuda:x", "CPU", "mps", "", "cuda:0 ", "cpu\n"])
def test_malformed_device_names_the_key(bad: str) -> None:
    with pytest.raises(DeepFNError, match=r"^compute\.device: .*auto, cpu, cuda, cuda:N"):
        resolve_device(bad)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA; the error is for machines without")
@pytest.mark.parametrize("dev", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line_with_the_fix(dev: str) -> None:
    with pytest.raises(DeepFNError) as info:
        resolve_device(dev)
    msg = str(info.value)
    assert msg.startswith("compute.device:") and "\n" not in msg
    assert "compute.device: cpu" in msg


@pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")
def test_cuda_index_past_the_device_count() -> None:
    with pytest.raises(DeepFNError, match="compute.device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_bad_precision() -> None:
    with pytest.raises(DeepFNError, match="precision"):
        resolve_compute("cpu", "fp16")


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_follows_precision(device: str) -> None:
    x = torch.randn(8, 8, device=device)
    with resolve_compute(device, "bf16").autocast():
        assert (x @ x).dtype == torch.bfloat16
    with resolve_compute(device, "fp32").autocast():
        assert (x @ x).dtype == torch.float32
    c = resolve_compute(device, "bf16")
    assert c.autocast_dtype == torch.bfloat16 and c.memory_format == torch.channels_last
    assert c.to_dict() == {"device": str(c.device), "precision": "bf16"}


@pytest.mark.parametrize("device", DEVICES)
def test_configure_sets_the_cuda_switches_only_on_cuda(device: str) -> None:
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
              torch.backends.cudnn.allow_tf32)
    try:
        resolve_compute(device).configure()
        after = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
                 torch.backends.cudnn.allow_tf32)
        assert after == ((True, True, True) if device == "cuda" else before)
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = before


@pytest.mark.parametrize("device", DEVICES)
def test_generator_is_a_seeded_cpu_generator(device: str) -> None:
    c = resolve_compute(device)
    g1, g2 = c.generator(7), c.generator(7)
    assert g1.device.type == "cpu"
    a, b = torch.randperm(100, generator=g1), torch.randperm(100, generator=g2)
    assert torch.equal(a, b) and not torch.equal(a, torch.randperm(100, generator=c.generator(8)))


@pytest.mark.parametrize("device", DEVICES)
def test_rng_state_round_trip_through_a_weights_only_file(device: str, tmp_path) -> None:
    c = resolve_compute(device)
    torch.manual_seed(3)
    state = rng_state(c)
    assert set(state) == ({"cpu", "cuda"} if c.is_cuda else {"cpu"})
    expect_cpu = torch.rand(5)
    expect_dev = torch.rand(5, device=c.device)
    torch.save(state, tmp_path / "rng.pt")
    torch.manual_seed(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", map_location=c.device, weights_only=True), c)
    assert torch.equal(torch.rand(5), expect_cpu)
    assert torch.equal(torch.rand(5, device=c.device), expect_dev)


def test_a_gpu_rng_state_resumes_on_a_cpu() -> None:
    """A checkpoint's extra CUDA state is ignored on the CPU; the CPU stream is restored."""
    torch.manual_seed(5)
    state = {"cpu": torch.get_rng_state(), "cuda": torch.zeros(16, dtype=torch.uint8)}
    expect = torch.rand(3)
    set_rng_state(state, Compute(torch.device("cpu")))
    assert torch.equal(torch.rand(3), expect)
