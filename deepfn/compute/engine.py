"""The Ray runtime behind ``compute.engine: ray``: connect (or start a local cluster), and the
resources one task asks for.

The only module that imports ``ray``, and only inside its functions (``import deepfn.compute``
and this module load nothing of Ray; ``make run``'s default path never needs it)::

    with ray_session(settings.compute.address) as cluster:    # RayCluster(address, cpus, gpus)
        ref = fn.options(**task_options(settings.compute.device, cluster)).remote(...)

``compute.address``:

``null``
    start a local cluster for this process, on 127.0.0.1 only, shut down on exit;
``127.0.0.1:port`` / ``localhost:port``
    join a cluster ``ray start --head --node-ip-address=127.0.0.1`` runs on this machine;
``auto``
    join the cluster ``ray start`` runs on this machine (a multi-machine head);
``host:port`` / ``ray://host:port``
    join a head node's GCS / its Ray client server.

Ray 2.60 turns token authentication on for a new local cluster (``RAY_AUTH_MODE=token``, the
token in ``~/.ray/auth_token`` or ``RAY_AUTH_TOKEN``); it is left on.  On Linux Ray rewrites
``--node-ip-address=127.0.0.1`` to the machine's external address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` ("no multi-node cluster"): set for the loopback cases
above, before ``ray`` is imported, so every server of a local cluster listens on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from deepfn.errors import DeepFNError

__all__ = ["RayCluster", "ray_session", "task_options", "require_ray", "is_loopback",
           "task_device", "MAX_RETRIES", "RAY_VERSION", "CONNECT_TIMEOUT_S"]

RAY_VERSION = "2.60.0"  # the [cluster] extra's pin: every node runs this one
MAX_RETRIES = 3  # a task whose worker process dies is run again this often (Ray's max_retries)
CONNECT_TIMEOUT_S = 5.0  # a TCP probe of compute.address before Ray's own (minutes-long) retries
_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class RayCluster:
    """The cluster a session is connected to: its GCS address and total resources."""

    address: str
    cpus: float
    gpus: float
    local: bool  # started by this process (ray_session(None)), shut down with it


def is_loopback(address: str | None) -> bool:
    """Whether ``compute.address`` names this machine's loopback (None: a local cluster)."""
    if address is None:
        return True
    if address == "auto":
        return False
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_ray(address: str | None = None) -> ModuleType:
    """``import ray`` (with usage stats off; loopback-only for a loopback ``address``), or one
    line saying how to install it."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if is_loopback(address):
        os.environ.setdefault(_LOCAL_ONLY, "0")
    try:
        import ray
    except ImportError as exc:
        raise DeepFNError("compute.engine: ray needs the cluster extra: pip install -e "
                          "'.[cluster]'") from exc
    return ray


def _probe(address: str) -> None:
    """A TCP connect to ``host:port`` within :data:`CONNECT_TIMEOUT_S`, else one line."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise DeepFNError(f"compute.address: cannot reach the Ray cluster at {address} "
                          f"({exc.strerror or exc.__class__.__name__}); start it (`ray start "
                          "--head`, docs/cluster.md) or fix the address") from exc


def _translate(exc: BaseException, address: str | None) -> DeepFNError | None:
    """Ray's errors on connecting, as one line (None: not one we know)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else exc.__class__.__name__
    where = address or "the local cluster"
    if "version mismatch" in text.lower():
        return DeepFNError(f"compute.address: {where} runs another Ray or Python version than "
                           f"this driver ({first}); install ray=={RAY_VERSION} on Python "
                           f"3.11 on every node (pip install -e '.[cluster]')")
    if exc.__class__.__name__ == "AuthenticationError" or "authentication" in text.lower():
        return DeepFNError(f"compute.address: {where} refused this driver's token ({first}); "
                           "copy the head's ~/.ray/auth_token (or set RAY_AUTH_TOKEN) as "
                           "docs/cluster.md says")
    if isinstance(exc, ConnectionError | TimeoutError):
        return DeepFNError(f"compute.address: cannot reach the Ray cluster at {where} "
                           f"({first}); start it (`ray start --head`) or fix the address")
    return None


def _cluster(ray: ModuleType, local: bool) -> RayCluster:
    res = ray.cluster_resources()
    ctx = ray.get_runtime_context()
    address = str(getattr(ctx, "gcs_address", "") or "")
    return RayCluster(address=address, cpus=float(res.get("CPU", 0.0)),
                      gpus=float(res.get("GPU", 0.0)), local=local)


@contextmanager
def ray_session(address: str | None, *, num_cpus: int | None = None) -> Iterator[RayCluster]:
    """Connected to the cluster ``address`` names (None: a new local cluster on 127.0.0.1 with
    ``num_cpus``, shut down on exit) for the block.

    A process already connected (the tests' session cluster, a caller's own ``ray.init``) keeps
    its cluster: it is yielded, and left running.  Errors on connecting are one line each
    (unreachable address, version mismatch, token refused).
    """
    if address not in (None, "auto"):
        _probe(address)
    ray = require_ray(address)
    if ray.is_initialized():
        yield _cluster(ray, local=False)
        return
    kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False,
                      _node_ip_address="127.0.0.1")
    else:
        kwargs.update(address=address)
    try:
        ray.init(**kwargs)
    except Exception as exc:
        line = _translate(exc, address)
        if line is None:
            raise
        raise line from exc
    try:
        yield _cluster(ray, local=address is None)
    finally:
        ray.shutdown()


def task_options(device: str, cluster: RayCluster) -> dict[str, Any]:
    """``.options(...)`` of one task computing on ``device`` (``compute.device``).

    ``cuda``/``cuda:N``, or ``auto`` on a cluster with GPUs: one GPU (Ray sets
    ``CUDA_VISIBLE_DEVICES`` to it, so the task computes on its ``cuda:0``); else one CPU.  A task
    whose worker process dies is retried :data:`MAX_RETRIES` times; errors the task raises are
    not retried (they would fail again).
    """
    wants_gpu = device.startswith("cuda") or (device == "auto" and cluster.gpus > 0)
    if device.startswith("cuda") and cluster.gpus < 1:
        raise DeepFNError(f"compute.device: {device} but the Ray cluster at {cluster.address} "
                          f"has no GPUs ({cluster.cpus:g} CPUs); set compute.device: auto or "
                          "cpu, or add nodes with GPUs (ray start --num-gpus=...)")
    options: dict[str, Any] = {"max_retries": MAX_RETRIES, "retry_exceptions": False}
    if wants_gpu:
        options.update(num_gpus=1, num_cpus=1)
    else:
        options.update(num_cpus=1)
    return options


def task_device(options: dict[str, Any]) -> str:
    """The ``compute.device`` a task launched with ``options`` computes on: ``cuda`` (its one
    visible GPU) or ``cpu``."""
    return "cuda" if options.get("num_gpus") else "cpu"
