"""compute.engine / compute.address and the Ray runtime (deepfn.compute.engine) on a real local
cluster: loopback only, token authentication on, one line per connection problem."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from deepfn.compute.engine import (
    MAX_RETRIES,
    RayCluster,
    _translate,
    is_loopback,
    ray_session,
    task_options,
)
from deepfn.config.load import settings_from_dict
from deepfn.errors import DeepFNError
from deepfn.tracking.provenance import key_parts

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------- settings
def test_engine_defaults_to_local_with_no_address() -> None:
    s = settings_from_dict({})
    assert (s.compute.engine, s.compute.address) == ("local", None)


@pytest.mark.parametrize("address", [None, "auto", "127.0.0.1:6379", "head.lab:6379",
                                     "ray://10.0.0.5:10001", "localhost:6380"])
def test_addresses_accepted(address: str | None) -> None:
    s = settings_from_dict({"compute": {"engine": "ray", "address": address}})
    assert s.compute.address == address


@pytest.mark.parametrize(("compute", "needle"), [
    ({"engine": "dask"}, "params.yaml: compute.engine: "),
    ({"address": "head.lab"}, "params.yaml: compute.address: 'head.lab' is not a Ray address"),
    ({"address": "http://x:1"}, "params.yaml: compute.address: "),
    ({"address": "x:99999"}, "params.yaml: compute.address: "),
])
def test_bad_engine_or_address_is_one_line_naming_the_key(compute: dict, needle: str) -> None:
    with pytest.raises(DeepFNError) as info:
        settings_from_dict({"compute": compute})
    assert str(info.value).startswith(needle)
    assert "\n" not in str(info.value)


def test_engine_and_address_never_enter_run_keys() -> None:
    local = settings_from_dict({"profile": "smoke"})
    ray = settings_from_dict({"profile": "smoke",
                              "compute": {"engine": "ray", "address": "10.0.0.5:6379"}})
    for stage in ("pretrain", "normalize", "experiments"):
        assert key_parts(local, stage, "cpu") == key_parts(ray, stage, "cpu")


# ------------------------------------------------------------------------- without a cluster
def test_importing_the_engine_does_not_import_ray() -> None:
    code = "import sys, deepfn.compute, deepfn.compute.engine; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, timeout=120).stdout
    assert out.strip() == "False"


def test_without_ray_one_line_names_the_extra() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "from deepfn.compute.engine import require_ray\n"
            "from deepfn.stage import exit_code\n"
            "raise SystemExit(exit_code(require_ray))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: compute.engine: ray needs the cluster extra: "
                                   "pip install -e '.[cluster]'")


def test_loopback_addresses() -> None:
    assert is_loopback(None) and is_loopback("127.0.0.1:6379") and is_loopback("localhost:1")
    assert is_loopback("ray://127.0.0.1:10001") and is_loopback("[::1]:6379")
    assert not is_loopback("auto") and not is_loopback("10.0.0.5:6379")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_address_is_one_line() -> None:
    address = f"127.0.0.1:{_free_port()}"
    with pytest.raises(DeepFNError) as info, ray_session(address):
        pass
    msg = str(info.value)
    assert msg.startswith(f"compute.address: cannot reach the Ray cluster at {address}")
    assert "ray start --head" in msg and "\n" not in msg


def test_version_mismatch_is_one_line() -> None:
    # the message ray.init raises when the cluster's Ray/Python differ from the driver's
    exc = RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.59.0\n"
                       "    Python: 3.11.9\nThis process on node 10.0.0.7 was started with:\n"
                       "    Ray: 2.60.0\n    Python: 3.11.9\n")
    line = _translate(exc, "10.0.0.5:6379")
    assert line is not None and "\n" not in str(line)
    assert str(line).startswith("compute.address: 10.0.0.5:6379 runs another Ray or Python "
                                "version than this driver")
    assert "ray==2.60.0" in str(line)
    assert _translate(ValueError("something else"), None) is None


def test_cuda_on_a_cluster_without_gpus_is_one_line() -> None:
    cpu_only = RayCluster(address="127.0.0.1:6379", cpus=2, gpus=0, local=True)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(DeepFNError) as info:
            task_options(device, cpu_only)
        assert str(info.value).startswith(f"compute.device: {device} but the Ray cluster at "
                                          "127.0.0.1:6379 has no GPUs (2 CPUs)")


def test_task_options_one_gpu_where_there_are_gpus() -> None:
    gpus = RayCluster(address="h:1", cpus=64, gpus=8, local=False)
    cpus = RayCluster(address="h:1", cpus=64, gpus=0, local=False)
    assert task_options("cuda:3", gpus)["num_gpus"] == 1
    assert task_options("auto", gpus)["num_gpus"] == 1
    assert "num_gpus" not in task_options("auto", cpus)
    assert "num_gpus" not in task_options("cpu", gpus)
    assert task_options("cpu", gpus)["num_cpus"] == 1
    assert task_options("cpu", gpus)["max_retries"] == MAX_RETRIES


# ------------------------------------------------------------------------ the local cluster
def test_session_cluster_has_two_cpus_and_is_kept(ray_cluster: RayCluster) -> None:
    import ray

    assert ray_cluster.cpus == 2 and ray_cluster.gpus == 0
    assert ray_cluster.address.startswith("127.0.0.1:")
    with ray_session(None, num_cpus=1) as cluster:  # already connected: joins, no new cluster
        assert cluster.address == ray_cluster.address and not cluster.local
    assert ray.is_initialized()


def test_local_cluster_listens_on_loopback_only(ray_cluster: RayCluster) -> None:
    import psutil
    import ray

    @ray.remote
    def pid() -> int:
        return os.getpid()

    worker = ray.get(pid.remote())  # at least one worker process is up
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    assert worker in {p.pid for p in procs}
    listening = []
    for p in procs:
        try:
            listening += [(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.Error:  # a process that ended meanwhile
            continue
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for _, ip, _ in listening), listening


def test_token_authentication_is_on(ray_cluster: RayCluster) -> None:
    from ray._raylet import AuthenticationMode, get_authentication_mode

    assert get_authentication_mode() == AuthenticationMode.TOKEN
    # a driver with another token is refused
    code = ("import ray, sys\n"
            "try:\n"
            f"    ray.init(address={ray_cluster.address!r}, logging_level='ERROR')\n"
            "except Exception as exc:\n"
            "    print('refused', type(exc).__name__)\n"
            "else:\n"
            "    print('connected')\n")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64,
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=180).stdout
    assert out.strip().startswith("refused"), out
