"""``make tracking-server`` for real: PostgreSQL + ``mlflow server`` on 127.0.0.1, several
processes logging through :class:`deepfn.tracking.Store` at once, none lost, none duplicated."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from deepfn.tracking import Store

pytestmark = pytest.mark.skipif(not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                                reason="PostgreSQL server binaries not found under "
                                       "/usr/lib/postgresql/*/bin (apt-get install postgresql)")

EXPERIMENT = "server-test"
WRITERS, RUNS_EACH = 4, 8

# One process: log RUNS_EACH runs (params, metrics, an artifact), skipping keys already FINISHED.
WRITER = """
import sys
from deepfn.tracking import Store, run_key
uri, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(uri)
done = store.finished_by_key("server-test")
for i in range(n):
    key = run_key(writer=who, i=i)
    if key in done:
        continue
    with store.start_run("server-test", run_name=f"{who}/{i}", tags={"run_key": key},
                         params={"writer": who, "i": i}) as run:
        run.log_metrics({"score": i / 10, "loss": 1 - i / 10})
        run.log_metrics({"score": i / 5}, step=1)
        run.log_table(__import__("pandas").DataFrame({"i": [i]}), "rows.json")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp{,6})."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]) if len(addr) == 8 else addr)
    return out


@pytest.fixture(scope="module")
def server():
    """``python -m deepfn.tracking.server`` (what ``make tracking-server`` runs), one for the
    module (the last test stops it)."""
    port, pg_port = _free_port(), _free_port()
    # not under tmp_path: run as root, PostgreSQL runs as the postgres user, who must reach it
    root = Path(tempfile.mkdtemp(prefix="deepfn-tracking-"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepfn.tracking.server", "--root", str(root), "--port",
         str(port), "--pg-port", str(pg_port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root)
    lines: list[str] = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail("tracking server exited:\n" + "".join(lines)[-3000:])
        lines.append(line)
        if "export MLFLOW_TRACKING_URI=" in line:
            break
    else:
        proc.kill()
        pytest.fail("tracking server did not start:\n" + "".join(lines)[-3000:])
    uri = line.split("=", 1)[1].strip()
    try:
        yield {"uri": uri, "port": port, "pg_port": pg_port, "root": root, "proc": proc}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


def test_server_takes_runs_from_several_processes_at_once(server, tmp_path: Path) -> None:
    uri = server["uri"]
    assert uri == f"http://127.0.0.1:{server['port']}"
    # MLflow and PostgreSQL listen on loopback only
    assert _listening(server["port"]) == {"127.0.0.1"}
    assert _listening(server["pg_port"]) == {"127.0.0.1"}
    sock = f".s.PGSQL.{server['pg_port']}"  # Unix sockets off
    assert not any(Path(d, sock).exists() for d in (server["root"] / "postgres",
                                                    "/var/run/postgresql", "/tmp"))
    assert oct((server["root"] / "pgpass").stat().st_mode & 0o777) == "0o600"

    def writers() -> list[subprocess.Popen[str]]:
        return [subprocess.Popen([sys.executable, "-c", WRITER, uri, f"w{k}", str(RUNS_EACH)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 cwd=tmp_path) for k in range(WRITERS)]

    for p in writers():  # all at once, creating the experiment concurrently too
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    store = Store(uri)
    exp_id = store.find_experiment_id(EXPERIMENT)
    assert exp_id is not None
    runs = list(store.search([exp_id]))
    assert len(runs) == WRITERS * RUNS_EACH  # none lost, none duplicated
    assert len({r.data.tags["run_key"] for r in runs}) == WRITERS * RUNS_EACH
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {(r.data.params["writer"], r.data.params["i"]) for r in runs} == {
        (f"w{k}", str(i)) for k in range(WRITERS) for i in range(RUNS_EACH)}
    one = runs[0]
    i = int(one.data.params["i"])
    assert one.data.metrics == {"score": pytest.approx(i / 5), "loss": pytest.approx(1 - i / 10)}
    history = store.client.get_metric_history(one.info.run_id, "score")
    assert sorted((m.step, m.value) for m in history) == [(0, pytest.approx(i / 10)),
                                                          (1, pytest.approx(i / 5))]
    # artifacts went through the server into its artifact root (no shared filesystem needed)
    assert one.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert [f.path for f in store.client.list_artifacts(one.info.run_id)] == ["rows.json"]
    assert list((server["root"] / "artifacts").rglob("rows.json"))

    # rerunning every writer finds its runs FINISHED and adds nothing
    for p in writers():
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    assert len(list(store.search([exp_id]))) == WRITERS * RUNS_EACH


def test_ctrl_c_stops_mlflow_and_postgresql_and_a_restart_keeps_the_runs(server) -> None:
    store = Store(server["uri"])
    with store.start_run(EXPERIMENT, run_name="kept", tags={"run_key": "k"}) as run:
        run.log_metric("x", 1.0)
    proc = server["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert not (server["root"] / "postgres" / "postmaster.pid").exists()
    assert not (server["root"] / "mlflow.pid").exists()
    assert _listening(server["port"]) == set() and _listening(server["pg_port"]) == set()
    # same root, new ports: the database (and its password) is reused
    port, pg_port = _free_port(), _free_port()
    again = subprocess.Popen(
        [sys.executable, "-m", "deepfn.tracking.server", "--root", str(server["root"]),
         "--port", str(port), "--pg-port", str(pg_port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert again.stdout is not None
        for line in again.stdout:
            if "export MLFLOW_TRACKING_URI=" in line:
                break
        uri = f"http://127.0.0.1:{port}"
        assert Store(uri).finished_by_key(EXPERIMENT)["k"] == run.run_id
    finally:
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=60) == 0
        again.stdout.close()
    stopped = subprocess.run([sys.executable, "-m", "deepfn.tracking.server", "--root",
                              str(server["root"]), "--stop"], capture_output=True, text=True,
                             timeout=60)
    assert stopped.returncode == 0 and "no tracking server runs" in stopped.stdout
