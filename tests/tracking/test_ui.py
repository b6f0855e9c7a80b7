"""The MLflow UI, rendered by headless Chromium against a real ``mlflow server``.

Users compare runs in the UI's runs table; these tests check that the links deepfn prints open
that table (not MLflow's GenAI overview) and that a filter in the link selects the right runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from deepfn.tracking import EXPERIMENT_AU, Store
from deepfn.tracking import names as n
from deepfn.tracking.ui import MODEL_RUNS, main, runs_links, runs_url

BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium (apt-get install chromium-headless-shell; "
    ".ci/run installs it)")


def _dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (virtual time: no fixed sleeps)."""
    assert BROWSER is not None
    done = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


_RUN_LINK = re.compile(r'<a\b[^>]*href="#/experiments/\d+/runs/[0-9a-f]{32}"[^>]*>'
                       r"(?:<[^>]+>)*([^<]+)<")


def _run_names(dom: str) -> list[str]:
    """The run names of the runs table in row order (each links to its run page)."""
    return [unescape(t).strip() for t in _RUN_LINK.findall(dom)]


@pytest.fixture(scope="module")
def ui_runs(mlflow_server: str) -> dict[str, object]:
    """deepfn-au on the server: a condition run per (group, normalization), two model runs
    nested under each (test/score 0.50 and 0.60)."""
    store = Store(mlflow_server)
    models: dict[tuple[str, str], list[str]] = {}
    for group in ("person", "gender"):
        for norm in ("deepfn", "original"):
            tags = {n.TAG_GROUP: group, n.TAG_NORMALIZATION: norm}
            with store.start_run(EXPERIMENT_AU, run_name=f"condition {group} {norm}",
                                 tags={**tags, n.TAG_KIND: n.KIND_CONDITION}) as parent:
                for rep in range(2):
                    name = f"model {group} {norm} r{rep}"
                    with store.start_run(EXPERIMENT_AU, run_name=name, parent_run_id=parent.run_id,
                                         tags={**tags, n.TAG_KIND: n.KIND_MODEL}) as run:
                        run.log_metrics({n.summary_metric("score"): 0.5 + rep / 10})
                    models.setdefault((group, norm), []).append(name)
    return {"url": mlflow_server, "exp_id": store.experiment_id(EXPERIMENT_AU),
            "models": models, "store": store}


@needs_browser
def test_a_filtered_runs_link_lists_exactly_the_matching_runs(ui_runs, tmp_path: Path) -> None:
    url = runs_url(ui_runs["url"], ui_runs["exp_id"],
                   f"tags.group = 'person' and tags.normalization = 'deepfn' and {MODEL_RUNS}",
                   order_by=f"metrics.`{n.summary_metric('score')}`")
    listed = _run_names(_dom(url, tmp_path / "profile"))
    # best test score first, then their condition run (fetched to nest them); none of the
    # other six model runs
    assert [r for r in listed if r.startswith("model ")] == ["model person deepfn r1",
                                                            "model person deepfn r0"]
    assert set(listed) <= {"model person deepfn r1", "model person deepfn r0",
                           "condition person deepfn"}


@needs_browser
def test_the_printed_link_opens_the_runs_table_not_the_genai_overview(ui_runs,
                                                                      tmp_path: Path) -> None:
    url = dict(runs_links(ui_runs["store"], ui_runs["url"]))[EXPERIMENT_AU]
    dom = _dom(url, tmp_path / "profile")
    # the runs table: every condition run as a row, its model runs folded under it
    assert sorted(_run_names(dom)) == sorted(f"condition {g} {m}" for g in ("person", "gender")
                                             for m in ("deepfn", "original"))
    text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
    assert "12 matching runs" in text and "Token Usage" not in text  # not the GenAI overview


def test_ui_links_name_every_experiment_of_the_store(ui_runs, capsys) -> None:
    assert main(["--uri", ui_runs["url"], "--base", "http://127.0.0.1:5000"]) == 0
    out = capsys.readouterr().out
    exp_id = ui_runs["exp_id"]
    assert (f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?workflowType=machine_learning"
            in out)
    assert "searchFilter=tags.kind+%3D+%27model%27" in out


def test_ui_links_on_a_missing_store_say_what_to_do(tmp_path: Path, capsys) -> None:
    assert main(["--uri", f"sqlite:///{tmp_path}/mlruns/mlflow.db"]) == 0
    assert "run the pipeline first" in capsys.readouterr().out
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
