from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepfn.errors import DeepFNError
from deepfn.tracking.server import wait_healthy


@pytest.fixture
def new_uri(blank_db: Path, tmp_path: Path) -> Callable[[str], str]:
    """``new_uri("a")``: the URI of a new empty store ``<tmp_path>/a/mlflow.db``."""

    def make(name: str) -> str:
        db = tmp_path / name / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(blank_db, db)
        return f"sqlite:///{db}"

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend and artifacts in a tmp dir): its URL.

    The same process serves the tracking API and the UI.  Stopped at the end of the session.
    """
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no GenAI job workers (7 processes)
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", (root / "artifacts").as_uri()],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    try:
        try:
            wait_healthy(url, proc, timeout=180)
        except DeepFNError as exc:
            pytest.fail(f"{exc}:\n" + _tail(root / "server.log"))
        yield url
    finally:
        _stop(proc)
        log.close()


def _tail(path: Path, n: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
