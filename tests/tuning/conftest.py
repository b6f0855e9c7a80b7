"""Fixtures for the tuning tests: a real PostgreSQL server, a pre-built MLflow store, tiny data.

``postgres_url`` starts Debian's PostgreSQL (``/usr/lib/postgresql/*/bin``) on 127.0.0.1 and a
free port, in a temporary data dir owned by the ``postgres`` user when running as root, and
stops it after the session.  It skips only when the server binaries are not installed.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_corpus

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "F001"
# template + 4 BP4D-like subjects: the smoke protocol's person split (2 train, 1 val, 1 test)
SUBJECTS = ["F001", "F002", "F003", "M001", "M002"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql://deepfn@127.0.0.1:<port>/optuna`` on a throwaway server."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql)")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="deepfn-pg-"))
    if os.geteuid() == 0:  # initdb/postgres refuse to run as root
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*args: str) -> None:
        proc = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=60)
        if proc.returncode:
            extra = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)}: {proc.stdout}{proc.stderr}{extra}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "deepfn", "--auth=trust", "-E", "UTF8",
        "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "deepfn",
            "optuna")
        yield f"postgresql://deepfn@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tuning_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  blank_db: Path) -> str:
    """A real sqlite MLflow store in ``tmp_path`` (a copy of the template), via the env var."""
    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir(parents=True)
    shutil.copy(blank_db, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    """Tiny corpora (32 px): clf, normalized, ae, template dir; and a smoke params file."""
    root = tmp_path / "data"
    paths = {name: make_corpus(root / name, SUBJECTS, size=32) for name in ("clf", "ae")}
    make_corpus(root / "normalized" / "deepfn", SUBJECTS, size=32)  # transfer's layout
    paths["normalized"] = root / "normalized"
    tdir = make_corpus(root / "template", [TEMPLATE], size=32)
    (tdir / "template.json").write_text(json.dumps({"subject": TEMPLATE}))
    paths["template"] = tdir / "template.json"
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["profile"] = "smoke"
    raw["experiments"]["precision"] = "fp32"
    raw["tune"].update({"epochs": [1, 2], "batch_size": [32], "n_trials": 2})
    paths["params"] = tmp_path / "params.yaml"
    paths["params"].write_text(yaml.safe_dump(raw, sort_keys=False))
    return paths


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is 10x faster than two on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
