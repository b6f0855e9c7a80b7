"""Table 5 cells, the test family and the findings from hand-made runs in a real MLflow store."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deepfn.stats.runs import fetch_runs
from deepfn.stats.tables import analyse, gap_is_significant
from deepfn.stats.tests import holm
from tests.stats.synthetic_runs import write_synthetic_store


@pytest.fixture
def hand_store(log_run) -> None:
    """Person split only; scores chosen so every cell is easy to compute by hand.

    independent          50 60 | 55 65   (2 runs, F001 twice)  -> 57.5, n=4, 3 people, 2 reps
    dependent            70 60 | 65                            -> 65.0, n=3, 3 people, 2 reps
    DeepFN independent   60 62 | 58 64                         -> 61.0, n=4
    DeepFN dependent     66                                    -> 66.0, n=1 (n/a SE and tests)
    """
    log_run("person", "independent", "original", 0, {"F001": 0.50, "F002": 0.60},
            aus={"AU01": 0.5, "AU02": 0.7})
    log_run("person", "independent", "original", 1, {"F001": 0.55, "F003": 0.65},
            aus={"AU01": 0.6, "AU02": 0.8})
    log_run("person", "dependent", "original", 0, {"F001": 0.70, "F002": 0.60}, train="self",
            test="self")
    log_run("person", "dependent", "original", 1, {"F003": 0.65}, train="self", test="self")
    log_run("person", "independent", "deepfn", 0, {"F001": 0.60, "F002": 0.62},
            aus={"AU01": 0.7, "AU02": 0.7})
    log_run("person", "independent", "deepfn", 1, {"F001": 0.58, "F003": 0.64},
            aus={"AU01": 0.8, "AU02": 0.9})
    log_run("person", "dependent", "deepfn", 0, {"F001": 0.66}, train="self", test="self")


def _analysis(uri: str):
    t = fetch_runs(uri)
    return analyse(t.participants, t.per_au, alpha=0.05, correction="holm")


def test_cells_equal_hand_computed_means(store: str, hand_store: None) -> None:
    a = _analysis(store)
    c = a.cells[a.cells["split"] == "person"].set_index("condition")
    assert c.at["independent", "mean"] == pytest.approx(57.5)
    assert c.at["independent", "sd"] == pytest.approx(math.sqrt(125 / 3))
    assert c.at["independent", "se"] == pytest.approx(math.sqrt(125 / 3) / 2)
    assert tuple(c.loc["independent", ["n_obs", "n_participants", "n_repetitions", "n_runs"]]
                 ) == (4, 3, 2, 2)
    assert c.at["dependent", "mean"] == pytest.approx(65.0)
    assert tuple(c.loc["dependent", ["n_obs", "n_participants", "n_repetitions"]]) == (3, 3, 2)
    assert c.at["deepfn_independent", "mean"] == pytest.approx(61.0)
    assert c.at["deepfn_dependent", "mean"] == pytest.approx(66.0)
    assert math.isnan(c.at["deepfn_dependent", "se"])
    assert c.at["deepfn_dependent", "note"].startswith("n/a: 1 observation")
    t5 = a.table5.set_index("split")
    assert t5.at["person", "independent"] == pytest.approx(57.5)
    assert t5.at["person", "gap"] == pytest.approx(7.5)
    assert t5.at["person", "paper_independent"] == 55.0
    assert t5.at["person", "deepfn_dependent_n"] == 1


def test_tests_equal_scipy_and_holm_over_the_family(store: str, hand_store: None) -> None:
    a = _analysis(store)
    t = a.tests[a.tests["split"] == "person"].set_index("test")
    indep, dep, dfn = [50, 60, 55, 65], [70, 60, 65], [60, 62, 58, 64]
    ref = {"gap": stats.ttest_ind(dep, indep),
           "deepfn_gain_independent": stats.ttest_ind(dfn, indep),
           "deepfn_independent_vs_dependent": stats.ttest_ind(dfn, dep)}
    for test, r in ref.items():
        assert t.at[test, "p_student"] == pytest.approx(r.pvalue, rel=1e-9)
        assert t.at[test, "t_student"] == pytest.approx(r.statistic, rel=1e-9)
    # only the three tests with >= 2 observations per side form the family
    assert int(a.tests["family_size"].iloc[0]) == 3
    corrected = holm([r.pvalue for r in ref.values()])
    assert [t.at[k, "p_corrected"] for k in ref] == pytest.approx(list(corrected))
    assert math.isnan(t.at["deepfn_gain_dependent", "p_student"])
    assert "n/a" in t.at["deepfn_gain_dependent", "note"]
    # the participant-level check averages F001's two independent observations first
    level = stats.ttest_ind(dep, [52.5, 60, 65])
    assert t.at["gap", "p_participant_level"] == pytest.approx(level.pvalue)


def test_missing_splits_and_small_cells_are_na(store: str, hand_store: None) -> None:
    a = _analysis(store)
    f = a.table5.set_index("split")
    assert f.at["person", "finding_d"] == "n/a"  # DeepFN dependent has one observation
    for split in ("gender", "skin", "dataset"):
        assert (f.loc[split, [f"finding_{x}" for x in "abcd"]] == "n/a").all()
        assert f.at[split, "independent_n"] == 0 and "no runs" in f.at[split, "note"]
        with pytest.raises(ValueError, match="no gap test"):
            gap_is_significant(a.table5, split)


def test_per_au_is_person_independent_runs(store: str, hand_store: None) -> None:
    au = _analysis(store).per_au.set_index(["au", "normalization"])
    assert au.at[("AU01", "original"), "mean"] == pytest.approx(55.0)
    assert au.at[("AU01", "original"), "se"] == pytest.approx(5.0)
    assert au.at[("AU02", "deepfn"), "mean"] == pytest.approx(80.0)
    assert au.at[("AU01", "deepfn"), "n"] == 2


def test_combinations_cover_train_test_pairs(synthetic_store: tuple[str, Path]) -> None:
    uri, manifest = synthetic_store
    t = fetch_runs(manifest=manifest)
    co = analyse(t.participants, t.per_au).combinations
    g = co[co["split"] == "gender"]
    assert list(dict.fromkeys(zip(g["train_group"], g["test_group"], strict=True))) == [
        ("F", "F"), ("M", "M"), ("F", "M"), ("M", "F")]
    assert set(g[g["train_group"] == g["test_group"]]["evaluation"]) == {"dependent"}
    # every observation lands in exactly one combination cell
    obs = t.participants[t.participants["group"] != "person"]
    assert co[co["split"] != "person"]["n_obs"].sum() == len(obs)


@pytest.mark.parametrize("gap_scale, expected", [(1.0, True), (0.0, False)])
def test_gap_is_significant_negative_control(store: str, gap_scale: float,
                                             expected: bool) -> None:
    """With the paper's gap the person gap is found; with none (negative control) it is not."""
    write_synthetic_store(store, repetitions=2, seed=3, gap_scale=gap_scale, splits=("person",))
    t = fetch_runs(store)
    table = analyse(t.participants, t.per_au).table5
    assert gap_is_significant(table, "person") is expected
    roundtrip = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
    assert gap_is_significant(roundtrip, "person") is expected  # works on table5.csv too


def test_all_nan_participants_table_is_fine() -> None:
    empty = pd.DataFrame(columns=["run_id", "group", "evaluation", "train_group", "test_group",
                                  "normalization", "repetition", "split_seed", "participant",
                                  "score"])
    a = analyse(empty, empty.rename(columns={"participant": "au"}))
    assert (a.table5[[f"finding_{x}" for x in "abcd"]] == "n/a").all().all()
    assert np.isnan(a.table5["gap"]).all()


def test_per_au_f1_is_mean_and_sd_over_repetitions() -> None:
    from deepfn.stats.tables import per_au_f1

    def row(rep: int, run: str, f1: float, ev: str = "dependent") -> dict[str, object]:
        return {"run_id": run, "group": "person", "evaluation": ev, "train_group": "self",
                "test_group": "self", "normalization": "original", "repetition": rep,
                "split_seed": 1, "au": "AU01", "score": f1, "f1": f1, "accuracy": f1}

    # repetition 0: two dependent runs (mean 0.3); repetition 1: one run (0.5)
    df = pd.DataFrame([row(0, "a", 0.2), row(0, "b", 0.4), row(1, "c", 0.5),
                       row(0, "d", 0.1, "independent")])
    t = per_au_f1(df).set_index(["condition", "au"])
    assert t.at[("dependent", "AU01"), "mean"] == pytest.approx(40.0)
    assert t.at[("dependent", "AU01"), "sd"] == pytest.approx(np.std([30.0, 50.0], ddof=1))
    assert t.at[("dependent", "AU01"), "n_repetitions"] == 2
    assert np.isnan(t.at[("independent", "AU01"), "sd"])  # one repetition: no SD
