"""deepfn.stats.runs against a real MLflow sqlite store: selection, pagination, errors, tidying."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfn.errors import DeepFNError
from deepfn.stats import runs as runs_mod
from deepfn.stats.runs import fetch_runs, load_manifest
from deepfn.tracking import EXPERIMENT_AU, Store

from .conftest import write_manifest


def _entries(ids: list[str]) -> list[dict[str, object]]:
    return [{"run_id": i} for i in ids]


def test_tidy_tables_one_row_per_run_and_participant(store: str, log_run, tmp_path: Path
                                                     ) -> None:
    a = log_run("person", "independent", "original", 0, {"F001": 0.5, "F002": 0.6},
                aus={"AU01": 0.4, "AU02": 0.7})
    b = log_run("gender", "independent", "deepfn", 1, {"M001": 0.7}, train="F", test="M")
    t = fetch_runs(manifest=write_manifest(tmp_path / "m.json", store, _entries([a, b])))
    assert set(t.runs["run_id"]) == {a, b}
    p = t.participants.sort_values("participant").reset_index(drop=True)
    assert list(p["participant"]) == ["F001", "F002", "M001"]
    assert list(p["score"]) == pytest.approx([0.5, 0.6, 0.7])
    assert list(p["f1"]) == pytest.approx([0.4, 0.5, 0.6])
    assert p.loc[2, "train_group"] == "F" and p.loc[2, "test_group"] == "M"
    assert list(p["repetition"]) == [0, 0, 1] and str(p["repetition"].dtype) == "Int64"
    assert list(p["split_seed"]) == [100, 100, 101]
    assert sorted(t.per_au["au"]) == ["AU01", "AU02"]
    assert t.distinct("data_version") == ["dv1"]
    for col in ("group", "evaluation", "train_group", "test_group", "normalization",
                "repetition", "split_seed", "participant", "score"):
        assert col in t.participants


def test_pagination_more_runs_than_one_page(store: str, log_run, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [log_run("person", "independent", "original", i, {"F001": 0.5}) for i in range(12)]
    c = Store(store).client
    exp = c.get_experiment_by_name(EXPERIMENT_AU)
    first = c.search_runs([exp.experiment_id], max_results=5)
    assert len(first) == 5 and first.token  # so more than one page is needed
    by_tags = fetch_runs(store, max_results=5)
    assert sorted(by_tags.runs["run_id"]) == sorted(ids)
    monkeypatch.setattr(runs_mod, "_ID_CHUNK", 5)  # 3 IN (...) chunks, each over 2 pages
    manifest = write_manifest(tmp_path / "m.json", store, _entries(ids))
    by_ids = fetch_runs(manifest=manifest, max_results=3)
    assert sorted(by_ids.runs["run_id"]) == sorted(ids)
    assert by_ids.participants["run_id"].is_unique


def test_manifest_selects_only_its_runs(store: str, log_run, tmp_path: Path) -> None:
    keep = log_run("person", "dependent", "original", 0, {"F001": 0.6}, train="self",
                   test="self")
    log_run("person", "dependent", "original", 1, {"F002": 0.9})  # an older pipeline's run
    t = fetch_runs(manifest=write_manifest(tmp_path / "m.json", store, _entries([keep])))
    assert list(t.runs["run_id"]) == [keep]
    assert fetch_runs(store, filter_string="tags.repetition = '1'").runs["repetition"].tolist(
    ) == [1]


def test_tag_selection_skips_condition_runs_and_unfinished(store: str, log_run) -> None:
    s = Store(store)
    s.client.create_run(s.experiment_id(EXPERIMENT_AU), tags={"kind": "condition"})
    done = log_run("person", "independent", "original", 0, {"F001": 0.5})
    log_run("person", "independent", "original", 1, {"F001": 0.5}, status="FAILED")
    assert list(fetch_runs(store).runs["run_id"]) == [done]


def test_missing_run_is_one_line_naming_it(store: str, log_run, tmp_path: Path) -> None:
    ok = log_run("person", "independent", "original", 0, {"F001": 0.5})
    manifest = write_manifest(tmp_path / "results" / "experiments.json", store,
                              _entries([ok, "0123456789abcdef0123456789abcdef"]))
    with pytest.raises(DeepFNError) as err:
        fetch_runs(manifest="results/experiments.json")
    msg = str(err.value)
    assert "\n" not in msg and manifest.is_file()
    assert msg == (f"the tracking store at {store} does not contain run "
                   "0123456789abcdef0123456789abcdef listed in results/experiments.json; "
                   "rerun dvc repro experiments")


def test_unfinished_manifest_run_says_so(store: str, log_run, tmp_path: Path) -> None:
    bad = log_run("person", "independent", "original", 0, {"F001": 0.5}, status="FAILED")
    manifest = write_manifest(tmp_path / "m.json", store, _entries([bad]))
    with pytest.raises(DeepFNError, match=f"run {bad} listed in .* is FAILED"):
        fetch_runs(manifest=manifest)


def test_bad_manifest_and_missing_experiment(store: str, tmp_path: Path) -> None:
    with pytest.raises(DeepFNError, match="manifest not found"):
        load_manifest(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DeepFNError, match="not an experiments manifest"):
        load_manifest(tmp_path / "bad.json")
    manifest = write_manifest(tmp_path / "m.json", store, _entries(["abc"]))
    with pytest.raises(DeepFNError, match="has no experiment 'deepfn-au'"):
        fetch_runs(manifest=manifest)
    empty = fetch_runs(store)  # no manifest, no experiment: empty tables and a note
    assert empty.runs.empty and empty.participants.empty and empty.notes


def test_scores_must_be_fractions(store: str, log_run) -> None:
    log_run("person", "independent", "original", 0, {"F001": 55.0})
    with pytest.raises(DeepFNError, match="must be fractions"):
        fetch_runs(store)


def test_unknown_tags_are_noted_not_fatal(store: str, log_run) -> None:
    log_run("person", "independent", "original", 0, {"F001": 0.5})
    log_run("age", "independent", "original", 0, {"F002": 0.5})
    t = fetch_runs(store)
    assert len(t.runs) == 2
    assert any("1 run(s) lack a known group" in n for n in t.notes)


def test_an_explicit_uri_beats_the_environment_which_beats_tracking_uri(
        synthetic_store, blank_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    uri, manifest = synthetic_store
    empty = tmp_path / "empty.db"
    shutil.copyfile(blank_db, empty)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{empty}")
    tables = fetch_runs(uri, manifest, configured_uri=f"sqlite:///{empty}")
    assert tables.uri == uri and len(tables.runs) == 28
    with pytest.raises(DeepFNError, match="has no experiment 'deepfn-au'"):
        fetch_runs(None, manifest, configured_uri=uri)  # the environment's (empty) store
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert fetch_runs(None, manifest, configured_uri=uri).uri == uri
