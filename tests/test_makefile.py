"""The Makefile: every phony target has a rule and a help line; `make clean` keeps tracked files."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKEFILE = (REPO / "Makefile").read_text()

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("git") is None,
                                reason="needs make and git")


def _phony() -> set[str]:
    text = MAKEFILE.replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(".PHONY:")]
    return set(line.split(":", 1)[1].split())


def _rules() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, flags=re.M))


def test_every_phony_target_has_a_rule_and_every_rule_is_phony() -> None:
    assert _phony() - _rules() == set()
    assert _rules() - _phony() == set()
    assert {"lint", "typecheck", "test", "run", "clean", "params-doc", "dashboard"} <= _rules()


def test_make_help_lists_every_target() -> None:
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    listed = {ln.split()[0] for ln in out.splitlines() if ln.strip()}
    assert listed == _rules()


def test_ci_runs_lint_and_typecheck_before_the_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    make_lines = [ln.split() for ln in ci.splitlines() if ln.startswith("make ")]
    assert make_lines, ".ci/run runs no make target"
    targets = make_lines[-1][1:]
    assert targets.index("lint") < targets.index("test")
    assert targets.index("typecheck") < targets.index("test")


def test_make_clean_removes_products_and_keeps_tracked_files(tmp_path: Path) -> None:
    repo = tmp_path / "clone"
    repo.mkdir()
    shutil.copy(REPO / "Makefile", repo / "Makefile")
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    (repo / "mlruns").mkdir()
    (repo / "mlruns" / "README.md").write_text("tracked\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "keep.md").write_text("tracked\n")

    def git(*args: str, cwd: Path = repo) -> None:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    products = [repo / "mlruns" / "mlflow.db", repo / "mlruns" / "artifacts" / "1" / "a.png",
                repo / "data" / "raw" / "F001.npz", repo / "models" / "pretrained.pt",
                repo / "reports" / "figures" / "fig.png", repo / ".optuna" / "journal.log",
                repo / ".smoke" / "params.yaml"]
    for p in products:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    git("init", "-q", cwd=repo / ".smoke")  # make smoke's scratch copy is its own repository
    subprocess.run(["make", "-s", "clean"], cwd=repo, check=True, capture_output=True,
                   timeout=60)
    assert (repo / "mlruns" / "README.md").read_text() == "tracked\n"
    assert (repo / "docs" / "keep.md").is_file()
    assert [p for p in products if p.exists()] == []
    assert not (repo / ".smoke").exists()
