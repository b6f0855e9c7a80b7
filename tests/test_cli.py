"""One way to run each stage: ``deepfn <stage>`` and ``pipelines/<stage>.py`` are the same call.

The slow test runs the whole pipeline twice on the smoke profile, in two project directories
with their own MLflow stores: once through each stage's pipeline entrypoint with the argv
``dvc.yaml`` declares, once through the CLI command with its defaults, and checks that both
wrote the same outputs and printed the same summary lines.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deepfn.cli import app
from deepfn.stage import Stage, exit_code

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# The smallest roster with a person split on the smoke protocol: the template + 2 train + 1 val
# + >= 1 test BP4D-like subjects.  The smoke profile, cut further (the outputs are compared, not
# judged): tiny frames, a few iterations, one epoch, the person split only.
ROSTER = ["F001", "F003", "M002", "M003", "M004"]
SMALLER = {"synthesize": {"image_size": 32}, "pretrain": {"iterations": 4},
           "normalize": {"iterations": 4, "checkpoint_every": 2, "log_every": 2},
           "experiments": {"groups": ["person"], "epochs": 1, "strategy": "sequential"}}
# What may differ between the two paths: MLflow run ids, the project's own path (its store's
# URI), wall times, and hashes over files that hold those.
RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")
MANIFEST_SHA = re.compile(r"(run ids of `[^`]+` \(sha256 `)[0-9a-f]+")  # report.md
VOLATILE = {"train_seconds", "run_id", "mlflow_run_id", "tracking_uri", "fetch_seconds"}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# ----------------------------------------------------------------------------- fast checks
def test_every_dvc_stage_has_one_name_entrypoint_and_command() -> None:
    for stage in DVC:
        module = importlib.import_module(f"pipelines.{stage}")
        runs = [v for v in vars(module).values() if isinstance(v, Stage)]
        assert [r.name for r in runs] == [stage], f"pipelines/{stage}.py runs {runs}"
        res = _cli(stage, "--help")
        assert res.exit_code == 0, res.output


def test_synth_is_a_hidden_alias_of_synthesize() -> None:
    assert " synth " not in _cli("--help").output
    assert "--identity-strength" in _cli("synth", "--help").output


def test_bad_params_is_one_error_line_and_exit_2_on_both_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("preprocess:\n  ae_size: 3\n")
    want = "error: params.yaml: preprocess.ae_size"
    assert importlib.import_module("pipelines.preprocess").main(
        ["--raw", "data/raw", "--out", "data/preprocessed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(want), err
    res = CliRunner().invoke(app, ["preprocess"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == err
    assert not Path("data").exists()


def test_missing_input_names_the_file_on_both_paths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text("profile: smoke\n")
    assert importlib.import_module("pipelines.template").main(
        ["--data", "data/preprocessed/ae", "--out", "data/template"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data/preprocessed/ae/manifest.json"), err
    res = CliRunner().invoke(app, ["template"])
    assert (res.exit_code, res.output.strip()) == (2, err)


def test_interrupt_exits_130_and_says_rerun(capsys: pytest.CaptureFixture[str]) -> None:
    def stopped() -> None:
        raise KeyboardInterrupt

    assert exit_code(stopped) == 130
    assert "rerun to resume" in capsys.readouterr().err


# ------------------------------------------------------------------- CLI vs pipeline twins
def _pipeline_argv(stage: str, item: str | None = None) -> list[str]:
    """The argv dvc.yaml gives pipelines/<stage>.py (``${item}`` of a foreach filled in)."""
    spec = DVC[stage].get("do", DVC[stage])
    argv = shlex.split(spec["cmd"].replace("${item}", item or ""))
    assert argv[:3] == ["python", "-m", f"pipelines.{stage}"], argv
    return argv[3:]


def _cli_argv(stage: str, item: str | None = None) -> list[str]:
    return [stage, "--subject", item] if item else [stage]


def _project(root: Path, blank_store: Path) -> Path:
    """A project dir: smoke params.yaml (:data:`SMALLER`), its own MLflow store."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["profile"] = "smoke"
    for section, values in SMALLER.items():
        params[section] = {**(params.get(section) or {}), **values}
    params["synthesize"]["subjects"] = ROSTER
    store = root / "mlruns" / "mlflow.db"
    params["tracking"] = {"uri": f"sqlite:///{store}"}
    store.parent.mkdir(parents=True)
    shutil.copyfile(blank_store, store)  # an empty store (creating one takes seconds)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _outputs(root: Path) -> Iterator[Path]:
    """Every file under the outs and metrics dvc.yaml declares."""
    for stage, spec in DVC.items():
        spec = spec.get("do", spec)
        for entry in [*spec.get("outs", []), *spec.get("metrics", [])]:
            rel = next(iter(entry)) if isinstance(entry, dict) else entry
            for item in ROSTER if "${item}" in rel else [None]:
                path = root / rel.replace("${item}", item or "")
                assert path.exists(), f"{stage}: {path} not written"
                yield from sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() \
                    else [path]


def _scrub(obj: Any, root: Path) -> Any:
    """``obj`` minus wall times, run ids and the project's own path."""
    if isinstance(obj, dict):
        return {k: _scrub(v, root) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_scrub(v, root) for v in obj]
    if isinstance(obj, str):
        obj = MANIFEST_SHA.sub(r"\1<manifest>", obj.replace(str(root), "<project>"))
        return RUN_ID.sub("<run>", obj)
    return obj


def _content(path: Path, root: Path) -> Any:
    if path.suffix == ".pt":
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        weights = {k: v.numpy().tobytes() for k, v in obj.pop("state_dict").items()}
        return weights, _scrub(obj, root)
    if path.suffix == ".json":
        return _scrub(json.loads(path.read_text()), root)
    if path.suffix in (".md", ".csv", ".txt", ".yaml"):
        return _scrub(path.read_text(), root)
    return path.read_bytes()


def _summary(text: str, root: Path) -> str:
    line = _scrub(text.strip().splitlines()[-1], root)
    return re.sub(r"\d+\.\d s to fetch|sha256 [0-9a-f]{12}", "<volatile>", line)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory, blank_db: Path
          ) -> Iterator[dict[str, Any]]:
    """The smoke pipeline run stage by stage, through the pipelines (a) and the CLI (b)."""
    base = tmp_path_factory.mktemp("twins")
    a, b = _project(base / "pipelines", blank_db), _project(base / "cli", blank_db)
    lines: dict[str, list[tuple[str, str]]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MPLBACKEND", "Agg")
        for stage in DVC:
            items = ROSTER if "foreach" in DVC[stage] else [None]
            module = importlib.import_module(f"pipelines.{stage}")
            for item in items:
                mp.chdir(a)
                with _capture() as out:
                    rc = module.main(_pipeline_argv(stage, item))
                assert rc == 0, f"pipelines/{stage}.py failed:\n{out.getvalue()}"
                mp.chdir(b)
                res = CliRunner().invoke(app, _cli_argv(stage, item), catch_exceptions=False)
                assert res.exit_code == 0, f"deepfn {stage} failed:\n{res.output}"
                lines.setdefault(stage, []).append((out.getvalue(), res.stdout))
    yield {"a": a, "b": b, "lines": lines}


class _capture:
    """stdout of an in-process call (capsys is function-scoped; the fixture is per module)."""

    def __enter__(self) -> Any:
        import contextlib
        import io

        self.buf = io.StringIO()
        self._cm = contextlib.redirect_stdout(self.buf)
        self._cm.__enter__()
        return self.buf

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


@pytest.mark.slow
def test_cli_and_pipeline_write_the_same_outputs(twins: dict[str, Any]) -> None:
    a, b = twins["a"], twins["b"]
    files_a = [p.relative_to(a) for p in _outputs(a)]
    files_b = [p.relative_to(b) for p in _outputs(b)]
    assert files_a == files_b
    assert len(files_a) > 40
    differ = [str(rel) for rel in files_a if _content(a / rel, a) != _content(b / rel, b)]
    assert not differ, f"CLI and pipeline outputs differ: {differ}"


@pytest.mark.slow
def test_cli_and_pipeline_print_the_same_summary(twins: dict[str, Any]) -> None:
    for stage, runs in twins["lines"].items():
        for via_pipeline, via_cli in runs:
            assert via_pipeline.strip().splitlines()[-1].startswith(f"{stage}: ")
            assert _summary(via_pipeline, twins["a"]) == _summary(via_cli, twins["b"]), stage


@pytest.mark.slow
def test_each_path_logged_to_its_own_store(twins: dict[str, Any]) -> None:
    from deepfn.tracking import Store

    def runs(root: Path) -> list[tuple[str, str]]:
        c = Store(f"sqlite:///{root}/mlruns/mlflow.db").client
        exps = {e.experiment_id: e.name for e in c.search_experiments()}
        found = c.search_runs(list(exps), max_results=1000)
        return sorted((exps[r.info.experiment_id], r.info.run_name) for r in found)

    in_a, in_b = runs(twins["a"]), runs(twins["b"])
    assert in_a == in_b
    assert {"deepfn-normalizer", "deepfn-au", "deepfn-stats"} <= {e for e, _ in in_a}
