"""Stats with the person-calibration baselines: every method vs original and DeepFN (one
correction family per method), Table 5 with a column pair per method, figures and report for 2
and 4 methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deepfn.config.load import settings_from_dict
from deepfn.stats import run_stats
from deepfn.stats.report import table5_markdown
from deepfn.stats.runs import fetch_runs
from deepfn.stats.tables import (
    ALL_CONDITIONS,
    CONDITIONS,
    analyse,
    method_tests,
    methods_in,
    with_conditions,
)
from deepfn.stats.tests import holm

from .conftest import copy_store, make_synthetic_db, write_manifest

FOUR = ("original", "deepfn", "person_mean", "person_median")


@pytest.fixture(scope="module")
def four_db(blank_db: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, list[dict[str, object]]]:
    """56 synthetic model runs: 1 repetition, all splits, all four methods."""
    return make_synthetic_db(blank_db, tmp_path_factory, "four", repetitions=1, seed=2,
                             normalizations=FOUR)


@pytest.fixture
def four(four_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    db, entries = four_db
    uri = copy_store(db, tmp_path, monkeypatch)
    return uri, write_manifest(tmp_path / "results" / "experiments.json", uri, entries)


def _scores(participants: pd.DataFrame, split: str, cond: str) -> np.ndarray:
    obs = with_conditions(participants)
    return obs[(obs["split"] == split) & (obs["condition"] == cond)]["score"].to_numpy()


def test_every_baseline_is_tested_against_original_and_deepfn(four) -> None:
    uri, manifest = four
    t = fetch_runs(uri, manifest)
    a = analyse(t.participants, t.per_au, runs=t.runs)
    assert a.methods == FOUR
    assert set(a.cells["condition"]) == set(ALL_CONDITIONS) and len(a.cells) == 4 * 8
    # the paper's 5 tests + 5 per baseline, per split; one family of 20 per method: the
    # paper's corrected p-values are those of a run without baselines
    assert len(a.tests) == 4 * 15 and set(a.tests["family_size"]) == {20}
    for _, family in a.tests.groupby("method"):
        np.testing.assert_allclose(family["p_corrected"], holm(family["p_student"]))
    paper_only = analyse(t.participants[t.participants["normalization"].isin(
        ["original", "deepfn"])], t.per_au)
    np.testing.assert_allclose(a.tests[a.tests["method"] == "deepfn"]["p_corrected"],
                               paper_only.tests["p_corrected"])
    person = a.tests[a.tests["split"] == "person"].set_index("test")
    for m in ("person_mean", "person_median"):
        for spec in method_tests(m):
            row = person.loc[spec.id]
            x, y = _scores(t.participants, "person", spec.a), _scores(t.participants, "person",
                                                                      spec.b)
            ref = stats.ttest_ind(x, y, equal_var=True)
            assert row["p_student"] == pytest.approx(ref.pvalue)
            assert row["diff"] == pytest.approx(x.mean() - y.mean())
            assert np.isfinite(row["cohens_d"]) and np.isfinite(row["hedges_g"])
            assert row["method"] == m
        assert person.at[f"{m}_vs_deepfn_independent", "b"] == "deepfn_independent"
    # Table 5: a column pair per baseline and its verdicts, from the same corrected p-values
    t5 = a.table5.set_index("split")
    for m in ("person_mean", "person_median"):
        for cond in (f"{m}_independent", f"{m}_dependent"):
            assert t5.at["person", cond] == pytest.approx(
                _scores(t.participants, "person", cond).mean())
            assert t5.at["person", f"{cond}_n"] > 0
        assert t5.at["person", f"{m}_finding_b"] in ("yes", "no")
        assert t5.at["person", f"{m}_vs_deepfn_independent"] in ("higher", "lower",
                                                                 "no difference")
        assert t5.at["person", f"{m}_vs_deepfn_independent_p"] == pytest.approx(
            person.at[f"{m}_vs_deepfn_independent", "p_corrected"])


def test_report_and_figures_with_four_methods(four, tmp_path: Path) -> None:
    _, manifest = four
    settings = settings_from_dict({"profile": "smoke"})
    r = run_stats(settings, manifest=manifest, out=tmp_path / "reports")
    reports = tmp_path / "reports"
    md = (reports / "table5.md").read_text()
    head = md.split("\n\n")[2].splitlines()[0]  # the means table's header
    assert head.count("ind. ± SE") == 2 and head.count("dep. ± SE") == 2
    assert head.index("person mean ind.") < head.index("person median ind.") < head.index("gap")
    assert "Person-calibration baselines vs original and DeepFN" in md
    assert md.count("| person mean | ") == 4 and md.count("| person median | ") == 4
    report = (reports / "report.md").read_text()
    assert "Person mean: independent" in report and "Person median: independent" in report
    assert "family of the paper's 20 tests; each baseline's tests another family" in report
    assert "(b) person mean" in report  # the all-tests table names the baseline
    tests = pd.read_csv(reports / "tests.csv")
    assert len(tests) == 60 and set(tests["method"]) == {"deepfn", "person_mean",
                                                         "person_median"}
    metrics = json.loads((reports / "metrics.json").read_text())
    assert {"person_mean_independent", "p_person_median_vs_deepfn_dependent_corrected"} <= set(
        metrics["person"])
    assert r["metrics"]["person"]["person_median_dependent"] is not None
    plot = pd.read_csv(reports / "plots" / "per_au.csv")
    assert set(plot["normalization"]) == set(FOUR)
    for png in ("table5_bars.png", "fig4_per_au.png", "fig5_gender.png"):
        assert (reports / "figures" / png).read_bytes()[:4] == b"\x89PNG"


def test_two_methods_keep_the_papers_layout(synthetic_store) -> None:
    uri, manifest = synthetic_store
    t = fetch_runs(uri, manifest)
    assert methods_in(t.participants) == ("original", "deepfn")
    a = analyse(t.participants, t.per_au)
    assert tuple(dict.fromkeys(a.cells["condition"])) == CONDITIONS
    assert len(a.tests) == 20
    md = table5_markdown(a.table5, a.correction)
    assert "person mean" not in md and "baselines" not in md


def test_a_baseline_alone_is_compared_with_empty_deepfn_cells_as_na(store: str, log_run) -> None:
    for rep in (0, 1):
        log_run("person", "independent", "original", rep, {"F001": 0.5 + rep / 10,
                                                            "F002": 0.55})
        log_run("person", "independent", "person_mean", rep, {"F001": 0.6, "F002": 0.62})
    t = fetch_runs(store)
    a = analyse(t.participants, t.per_au)
    assert a.methods == ("original", "deepfn", "person_mean")
    tests = a.tests[a.tests["split"] == "person"].set_index("test")
    assert np.isfinite(tests.at["person_mean_gain_independent", "p_student"])
    assert np.isnan(tests.at["person_mean_vs_deepfn_independent", "p_student"])
    t5 = a.table5.set_index("split")
    assert t5.at["person", "person_mean_vs_deepfn_independent"] == "n/a"
