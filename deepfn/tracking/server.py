"""``make tracking-server``: an MLflow tracking server on PostgreSQL, for many writers at once.

    make tracking-server            # foreground; Ctrl-C stops MLflow, then PostgreSQL
    make tracking-server-stop       # stops one left running (started with &, or after a kill)
    python -m deepfn.tracking.server --root .tracking --port 5001 --pg-port 5433

then, on every machine that logs runs (the URI is printed at start)::

    export MLFLOW_TRACKING_URI=http://127.0.0.1:5001

What it runs, everything under ``--root`` (default ``.tracking/``):

* PostgreSQL from Debian's packages (``/usr/lib/postgresql/<v>/bin``) in ``<root>/postgres``:
  ``initdb`` once, listening on 127.0.0.1 only, Unix sockets off, password
  (scram-sha-256) auth for TCP; the password is generated once into ``<root>/pgpass`` (mode
  0600, libpq's ``PGPASSFILE``), so no password appears on a command line or in a URI.  Run as
  root, the server runs as the ``postgres`` user (``initdb`` refuses root).
* ``mlflow server --backend-store-uri postgresql+psycopg2://deepfn@HOST:PGPORT/mlflow
  --artifacts-destination <root>/artifacts --host HOST --port PORT``: clients send artifacts
  through the server (``mlflow-artifacts:/``), so no node needs a shared filesystem.  Its
  security middleware stays on (MLflow's defaults: Host headers of localhost and private
  addresses, CORS from localhost); ``--allowed-hosts`` passes a list through for a server
  reached by name.

The schema is created once before the server's workers start (several uvicorn workers creating
it at once would race).
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from deepfn.errors import DeepFNError

__all__ = ["Postgres", "pg_bindir", "backend_uri", "mlflow_command", "serve", "stop",
           "wait_healthy", "main"]

DB_USER = "deepfn"
DB_NAME = "mlflow"


def pg_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<v>/bin`` holding ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(v) if (v := Path(p).parts[-3]).isdigit() else 0)
    if not found:
        raise DeepFNError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; "
                          "install them (sudo apt-get install postgresql) and rerun")
    return Path(found[-1]).parent


class Postgres:
    """A PostgreSQL cluster in ``root/postgres`` on ``host:port``, created on first start."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 5433) -> None:
        self.root, self.host, self.port = root.resolve(), host, port
        self.data, self.log = self.root / "postgres", self.root / "postgres.log"
        self.passfile = self.root / "pgpass"
        self.bindir = pg_bindir()
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb/postgres refuse to run as root
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise DeepFNError("running as root and there is no 'postgres' user to run "
                                  "PostgreSQL as; run as a normal user") from exc
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str, as_server: bool = True) -> None:
        cmd = [*(self._as if as_server else []), str(self.bindir / tool), *args]
        env = {**os.environ, "PGPASSFILE": str(self.passfile)}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                              cwd=self.root)
        if proc.returncode:
            tail = self.log.read_text()[-1500:] if self.log.exists() else ""
            raise DeepFNError(f"{tool} failed ({proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[:500]} {tail}".strip())

    def _chown(self, path: Path) -> None:
        if self._as:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self) -> None:
        """``initdb`` with a generated password, unless the cluster exists."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)  # the server writes its log here
        if self._as and subprocess.run([*self._as, "test", "-x", str(self.root)]).returncode:
            raise DeepFNError(f"--root {self.root}: the postgres user cannot reach it (a parent "
                              "directory is private); pick a root it can reach")
        if (self.data / "PG_VERSION").is_file():
            return
        password = secrets.token_urlsafe(24)
        self.data.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data)
        pwfile = self.data.with_name("initdb.pw")
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self._chown(pwfile)
        try:
            self._run("initdb", "-D", str(self.data), "-U", DB_USER, "-E", "UTF8",
                      "--auth-local=trust", "--auth-host=scram-sha-256",
                      f"--pwfile={pwfile}")
        finally:
            pwfile.unlink(missing_ok=True)
        # hostname:port:database:username:password; '*' -- the port may change between starts
        self.passfile.write_text(f"*:*:*:{DB_USER}:{password}\n")
        self.passfile.chmod(0o600)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").is_file()

    def start(self) -> None:
        self.init()
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                  f"-p {self.port} -c listen_addresses={self.host} "
                  "-c unix_socket_directories=''", "start")
        probe = subprocess.run(
            [str(self.bindir / "psql"), "-h", self.host, "-p", str(self.port), "-U", DB_USER,
             "-d", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB_NAME}'"],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PGPASSFILE": str(self.passfile)})
        if probe.returncode:
            raise DeepFNError(f"PostgreSQL on {self.host}:{self.port} refused the connection: "
                              f"{probe.stderr.strip()[:300]}")
        if probe.stdout.strip() != "1":
            self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", DB_USER, DB_NAME,
                      as_server=False)

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def backend_uri(pg: Postgres) -> str:
    """The SQLAlchemy URL of the store (psycopg2 driver; the password comes from PGPASSFILE)."""
    return f"postgresql+psycopg2://{DB_USER}@{pg.host}:{pg.port}/{DB_NAME}"


def mlflow_command(backend: str, artifacts: Path, host: str, port: int, workers: int,
                   allowed_hosts: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--artifacts-destination", str(artifacts), "--host", host, "--port", str(port),
           "--workers", str(workers)]
    return cmd + (["--allowed-hosts", allowed_hosts] if allowed_hosts else [])


def _create_schema(backend: str, artifacts: Path) -> None:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(backend, artifacts.as_uri()).engine.dispose()  # type: ignore[no-untyped-call]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until ``url``/health answers 200; one line when ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeepFNError(f"mlflow server exited with code {proc.returncode} before it "
                              "answered; see its output above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise DeepFNError(f"mlflow server did not answer {url}/health within {timeout:.0f} s")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve(root: Path, *, host: str = "127.0.0.1", port: int = 5001, pg_port: int = 5433,
          workers: int = 2, allowed_hosts: str | None = None) -> int:
    """Start PostgreSQL and the MLflow server, print the URI, serve until SIGINT/SIGTERM, stop
    both.  Returns the exit code (0 after a clean stop)."""
    pg = Postgres(root, "127.0.0.1", pg_port)  # only the MLflow server on this machine needs it
    if pg.running:
        raise DeepFNError(f"{pg.data}: PostgreSQL already runs there; stop it first "
                          "(make tracking-server-stop)")
    artifacts = pg.root / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    pg.start()
    proc: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        backend = backend_uri(pg)
        env = {**os.environ, "PGPASSFILE": str(pg.passfile),
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        os.environ["PGPASSFILE"] = str(pg.passfile)
        _create_schema(backend, artifacts)
        proc = subprocess.Popen(mlflow_command(backend, artifacts, host, port, workers,
                                               allowed_hosts),
                                env=env, start_new_session=True)  # Ctrl-C reaches us alone
        (pg.root / "mlflow.pid").write_text(f"{proc.pid}\n")
        url = f"http://{host}:{port}"
        wait_healthy(url, proc)
        print(f"MLflow tracking server on {url} (PostgreSQL 127.0.0.1:{pg_port}, artifacts "
              f"{artifacts}); on every node that logs runs:\n"
              f"  export MLFLOW_TRACKING_URI={url}\nCtrl-C stops it.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        if not stopping:
            raise
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc is not None:
            _stop_group(proc)
        (pg.root / "mlflow.pid").unlink(missing_ok=True)
        pg.stop()


def stop(root: Path) -> str:
    """Stop a server left running under ``root`` (its MLflow process group, then PostgreSQL)."""
    root = root.resolve()
    said = []
    pidfile = root / "mlflow.pid"
    if pidfile.is_file():
        pid = int(pidfile.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            said.append(f"mlflow server (pid {pid})")
        except ProcessLookupError:
            pass
        pidfile.unlink()
    if (root / "postgres" / "postmaster.pid").is_file():
        Postgres(root).stop()
        said.append("PostgreSQL")
    return "stopped " + " and ".join(said) if said else f"no tracking server runs in {root}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deepfn.tracking.server",
                                 description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=Path(".tracking"),
                    help="PostgreSQL data, artifacts, password file (default .tracking)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address the MLflow server listens on (default 127.0.0.1; PostgreSQL "
                         "always listens on 127.0.0.1)")
    ap.add_argument("--port", type=int, default=5001, help="MLflow server port (5001)")
    ap.add_argument("--pg-port", type=int, default=5433, help="PostgreSQL port (5433)")
    ap.add_argument("--workers", type=int, default=2, help="MLflow server workers (2)")
    ap.add_argument("--allowed-hosts", default=None,
                    help="MLflow --allowed-hosts (Host headers beyond localhost/private IPs)")
    ap.add_argument("--stop", action="store_true", help="stop a server left running in --root")
    args = ap.parse_args(argv)
    try:
        if args.stop:
            print(stop(args.root))
            return 0
        return serve(args.root, host=args.host, port=args.port, pg_port=args.pg_port,
                     workers=args.workers, allowed_hosts=args.allowed_hosts)
    except DeepFNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
