"""The stats stage end to end: pipelines/stats.py on a synthetic store, files, MLflow run."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from deepfn.config.load import settings_from_dict
from deepfn.stats import OUTPUTS, run_stats
from deepfn.tracking import EXPERIMENT_STATS, Store

from .conftest import copy_store, write_manifest

REPO = Path(__file__).resolve().parents[2]


def _stage_main():
    spec = importlib.util.spec_from_file_location("pipeline_stats", REPO / "pipelines/stats.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def stage(synthetic_db, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``python pipelines/stats.py`` run once on a copy of the synthetic store; the project dir."""
    db, entries = synthetic_db
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        uri = copy_store(db, root, mp)
        write_manifest(root / "results" / "experiments.json", uri, entries)
        (root / "params.yaml").write_text("profile: smoke\nstats:\n  correction: holm\n")
        other = root / "reports" / "normalization" / "fig2.png"  # another stage's output
        other.parent.mkdir(parents=True)
        other.write_bytes(b"not ours")
        assert _stage_main()(["--manifest", "results/experiments.json", "--out", "reports"]) == 0
        yield root


def test_every_output_is_written_and_nothing_else_touched(stage: Path) -> None:
    reports = stage / "reports"
    for rel in OUTPUTS:
        assert (reports / rel).is_file() and (reports / rel).stat().st_size > 0, rel
    assert (reports / "normalization" / "fig2.png").read_bytes() == b"not ours"
    assert not [p for p in reports.iterdir() if p.name.startswith(".")]  # no temp dirs left
    assert (reports / "figures" / "fig4_per_au.png").read_bytes()[:4] == b"\x89PNG"


def test_report_states_findings_test_and_provenance(stage: Path) -> None:
    text = (stage / "reports" / "report.md").read_text()
    for needle in ("## Findings", "(a) reproduced", "(b) reproduced", "Student's t-test",
                   "equal variances", "Holm", "participant observation", "synthetic",
                   "model runs | 28", "unique participants", "repetitions | 1"):
        assert needle in text, needle
    for split in ("**Person.**", "**Gender.**", "**Skin type.**", "**Dataset.**"):
        assert split in text
    for link in ("figures/table5_bars.png", "figures/fig4_per_au.png", "figures/fig7_dataset.png"):
        assert f"]({link})" in text and (stage / "reports" / link).is_file()
    assert "| Person | 55.0 |" in (stage / "reports" / "table5.md").read_text()


def test_report_has_reference_rows_and_per_au_f1(stage: Path) -> None:
    text = (stage / "reports" / "report.md").read_text()
    refs = text.split("## How far above trivial")[1].split("## Per-AU F1")[0]
    # the synthetic store logs F1 0 / accuracy 75 % for all-absent, 25 / 62.5 for random
    assert "| Person | dependent | all-absent | 37.5 | 0.0 | 75.0 |" in refs
    assert "| Person | independent | random (training prevalence) | 43.8 | 25.0 | 62.5 |" in refs
    assert "majority label of the subject" in refs
    assert refs.count("majority") == 2  # person-dependent only (+ the legend)
    for split in ("Person", "Gender", "Skin type", "Dataset"):
        assert f"| {split} | independent | **model** |" in refs
    per_au = text.split("## Per-AU F1")[1].split("## Findings")[0]
    assert "**Person**" in per_au and "| Condition | AU1 | AU2 |" in per_au
    assert "| DeepFN dependent |" in per_au


def test_csvs_and_metrics(stage: Path) -> None:
    reports = stage / "reports"
    t5 = pd.read_csv(reports / "table5.csv")
    assert list(t5["split"]) == ["person", "gender", "skin", "dataset"]
    assert {"paper_independent", "independent", "independent_se", "independent_n", "gap",
            "p_gap", "p_gap_corrected", "finding_a", "finding_d"} <= set(t5.columns)
    tests = pd.read_csv(reports / "tests.csv")
    assert len(tests) == 20
    assert {"p_student", "p_corrected", "p_welch", "p_welch_corrected", "cohens_d", "hedges_g",
            "diff_ci_low", "diff_ci_high", "paper_p"} <= set(tests.columns)
    assert (tests["p_corrected"] >= tests["p_student"]).all()
    plot = pd.read_csv(reports / "plots" / "table5.csv")
    assert list(plot.columns[:4]) == ["split", "condition", "label", "score"] and len(plot) == 16
    assert list(pd.read_csv(reports / "plots" / "per_au.csv").columns[:4]) == [
        "au", "normalization", "label", "score"]

    def no_nan(token: str) -> None:
        raise AssertionError(f"metrics.json holds {token}")

    metrics = json.loads((reports / "metrics.json").read_text(), parse_constant=no_nan)
    assert metrics["n_runs"] == 28 and metrics["n_repetitions"] == 1
    person = metrics["person"]
    assert person["gap"] == pytest.approx(person["dependent"] - person["independent"], abs=1e-4)
    assert 0 < person["p_gap"] <= person["p_gap_corrected"] <= 1


def test_stats_run_is_logged_with_manifest_hash(stage: Path) -> None:
    c = Store().client  # MLFLOW_TRACKING_URI: the stage's store
    exp = c.get_experiment_by_name(EXPERIMENT_STATS)
    [run] = c.search_runs([exp.experiment_id])
    manifest = (stage / "results" / "experiments.json").read_bytes()
    assert run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "stats" and run.data.tags["profile"] == "synthetic"
    assert run.data.tags["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert run.data.params["stats.correction"] == "holm"
    assert "person/gap" in run.data.metrics
    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"report.md", "table5.csv", "tests.csv", "figures", "plots"} <= artifacts
    assert run.info.run_id in (stage / "reports" / "report.md").read_text()


def test_missing_run_exits_2_and_writes_nothing(synthetic_store, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    uri, manifest = synthetic_store
    raw = json.loads(manifest.read_text())
    raw["runs"].append({"run_id": "ffffffffffffffffffffffffffffffff"})
    manifest.write_text(json.dumps(raw))
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    rc = _stage_main()(["--manifest", "results/experiments.json", "--out", "reports"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1] == (f"error: the tracking store at {uri} does not contain run "
                       "ffffffffffffffffffffffffffffffff listed in results/experiments.json; "
                       "rerun dvc repro experiments")
    assert not (tmp_path / "reports").exists()


def test_library_call_with_missing_splits(store: str, log_run, tmp_path: Path) -> None:
    """Only person runs, one cell with one observation: n/a everywhere else, no crash."""
    log_run("person", "independent", "original", 0, {"F001": 0.5, "F002": 0.6})
    log_run("person", "dependent", "original", 0, {"F001": 0.7}, train="self", test="self")
    settings = settings_from_dict({"stats": {"correction": "bonferroni"}})
    result = run_stats(settings, manifest=None, out=tmp_path / "out", uri=store,
                       filter="tags.profile = 'test'")
    assert result["n_runs"] == 2 and result["n_observations"] == 3
    assert result["findings"]["gender"] == {f"finding_{f}": "n/a" for f in "abcd"}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "n/a" in text and "Bonferroni" in text and "no runs" in text
    assert all((tmp_path / "out" / rel).is_file() for rel in OUTPUTS)
