"""Pull the experiments stage's model runs from MLflow (search API only) into tidy tables.

Runs are selected by the run ids of the experiments manifest (``results/experiments.json``, the
default) or, without a manifest, by tags (``kind = 'model'``, ``stage = 'experiments'`` plus an
optional MLflow filter string); either way only FINISHED runs.  Everything comes from
``MlflowClient.search_runs`` pages (``page_token``), so a sqlite store and a tracking server
behave the same and training outputs are never read again.

Tables (scores are fractions, as logged; the summaries in :mod:`deepfn.stats.tables` are in %):

* ``runs``          one row per model run: the condition tags, ``test_score``, provenance tags
* ``participants``  one row per (run, participant): ``participant/<subject>/score`` (+ f1, acc.)
* ``per_au``        one row per (run, AU): ``test/AUxx/score`` (+ f1, accuracy)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from deepfn.errors import DeepFNError
from deepfn.stats.tables import METHODS, SPLITS
from deepfn.tracking import EXPERIMENT_AU, Store, display_uri
from deepfn.tracking import names as n
from deepfn.utils.io import sha256_file

__all__ = [
    "PAGE_SIZE", "CONDITION_TAGS", "RUN_TAGS", "Manifest", "RunTables", "load_manifest",
    "search_all", "tidy", "fetch_runs", "display_uri",
]

PAGE_SIZE = 1000  # runs per search page (MLflow servers accept up to 50,000)
_ID_CHUNK = 500  # run ids per "attributes.run_id IN (...)" filter
FINISHED = "attributes.status = 'FINISHED'"
MODEL_RUNS = (f"tags.{n.TAG_KIND} = '{n.KIND_MODEL}' and "
              f"tags.{n.TAG_STAGE} = 'experiments'")

# The condition a run belongs to (the columns of every tidy table) ...
CONDITION_TAGS = (*n.CONDITION_TAGS, n.TAG_REPETITION, n.TAG_SPLIT_SEED)
# ... and the other tags kept per run.
RUN_TAGS = CONDITION_TAGS + (n.TAG_KIND, n.TAG_RUN_KEY, n.TAG_MODEL_KEY, n.TAG_PROFILE,
                             n.TAG_GIT_COMMIT, n.TAG_DATA_VERSION, n.TAG_TRAIN_SUBJECTS,
                             n.TAG_VAL_SUBJECTS, n.TAG_TEST_SUBJECTS)
_PARTICIPANT = re.compile(n.PARTICIPANT_METRIC_RE)
_AU = re.compile(n.AU_METRIC_RE)
_RUN_METRICS = {**{n.summary_metric(m): f"test_{m}" for m in n.SCORE_METRICS},
                n.METRIC_BEST_EPOCH: "best_epoch",
                n.METRIC_N_AUS_WITHOUT_POSITIVES: "n_aus_without_positives",
                # the reference classifiers on the same test frames (deepfn.au.metrics)
                **{n.reference_metric(ref, m): f"ref_{ref}_{m}"
                   for ref in n.REFERENCES for m in n.SCORE_METRICS}}


@dataclass(frozen=True)
class Manifest:
    """``results/experiments.json``: which runs the experiments stage produced."""

    path: str
    experiment: str
    tracking_uri: str | None
    data_version: str | None
    run_ids: tuple[str, ...]
    sha256: str


def load_manifest(path: str | Path) -> Manifest:
    p = Path(path)
    if not p.is_file():
        raise DeepFNError(f"{p}: manifest not found; run dvc repro experiments first")
    try:
        raw = json.loads(p.read_text())
        runs = raw["runs"]
        ids = tuple(str(r["run_id"]) for r in runs)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeepFNError(f"{p}: not an experiments manifest ({type(exc).__name__}: {exc}); "
                          "rerun dvc repro experiments") from None
    return Manifest(path=str(path), experiment=str(raw.get("experiment") or EXPERIMENT_AU),
                    tracking_uri=raw.get("tracking_uri"), data_version=raw.get("data_version"),
                    run_ids=tuple(dict.fromkeys(ids)), sha256=sha256_file(p))


def search_all(store: Store, experiment_ids: Sequence[str], filter_string: str, *,
               max_results: int = PAGE_SIZE, all_views: bool = False) -> list[Any]:
    """Every run matching ``filter_string``, page by page (``page_token``)."""
    return list(store.search(experiment_ids, filter_string, max_results=max_results,
                             all_views=all_views))


def _ids_filter(ids: Sequence[str]) -> str:
    return "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"


def _by_ids(store: Store, exp_id: str, ids: Sequence[str], extra: str, max_results: int,
            all_views: bool = False) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), _ID_CHUNK):
        flt = _ids_filter(ids[i:i + _ID_CHUNK]) + (f" and {extra}" if extra else "")
        out += search_all(store, [exp_id], flt, max_results=max_results, all_views=all_views)
    return out


def _missing_error(store: Store, exp_id: str, missing: list[str], manifest: Manifest
                   ) -> NoReturn:
    """One line naming the first missing run (and whether it is there but not FINISHED)."""
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    there = {r.info.run_id: r for r in _by_ids(store, exp_id, missing[:1], "", PAGE_SIZE, True)}
    run = there.get(missing[0])
    where = f"the tracking store at {display_uri(store.uri)}"
    if run is not None:
        state = run.info.status if run.info.lifecycle_stage == "active" else "deleted"
        raise DeepFNError(f"run {missing[0]}{more} listed in {manifest.path} is {state} in {where}"
                          " (only FINISHED runs are analysed); rerun dvc repro experiments")
    raise DeepFNError(f"{where} does not contain run {missing[0]}{more} listed in "
                      f"{manifest.path}; rerun dvc repro experiments")


@dataclass(frozen=True)
class RunTables:
    """The tidy tables plus where they came from."""

    runs: pd.DataFrame
    participants: pd.DataFrame
    per_au: pd.DataFrame
    uri: str
    experiment: str
    manifest: Manifest | None = None
    filter_string: str = ""
    seconds: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def distinct(self, tag: str) -> list[str]:
        """Distinct non-empty values of a run tag (profile, data_version, git_commit, ...)."""
        if self.runs.empty or tag not in self.runs:
            return []
        return sorted({str(v) for v in self.runs[tag].dropna() if str(v)})


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(columns))
    for col in ("repetition", "split_seed"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df


def tidy(runs: Sequence[Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """MLflow runs -> (runs, participants, per_au) tables; condition runs are dropped."""
    run_rows: list[dict[str, Any]] = []
    part_rows: list[dict[str, Any]] = []
    au_rows: list[dict[str, Any]] = []
    for r in runs:
        tags = r.data.tags
        if tags.get(n.TAG_KIND) == n.KIND_CONDITION:
            continue
        meta = {"run_id": r.info.run_id, **{t: tags.get(t) for t in CONDITION_TAGS}}
        parts: dict[str, dict[str, float]] = {}
        aus: dict[str, dict[str, float]] = {}
        row = {**meta, **{t: tags.get(t) for t in RUN_TAGS[len(CONDITION_TAGS):]}}
        for name, value in r.data.metrics.items():
            if m := _PARTICIPANT.match(name):
                parts.setdefault(m["key"], {})[m["metric"]] = value
            elif m := _AU.match(name):
                aus.setdefault(m["key"], {})[m["metric"]] = value
            elif name in _RUN_METRICS:
                row[_RUN_METRICS[name]] = value
        row["n_participants"] = sum("score" in v for v in parts.values())
        run_rows.append(row)
        part_rows += [{**meta, "participant": k, **v} for k, v in sorted(parts.items())]
        au_rows += [{**meta, "au": k, **v} for k, v in sorted(aus.items())]
    metric_cols = n.SCORE_METRICS
    return (_frame(run_rows, ("run_id", *RUN_TAGS, *_RUN_METRICS.values(), "n_participants")),
            _frame(part_rows, ("run_id", *CONDITION_TAGS, "participant", *metric_cols)),
            _frame(au_rows, ("run_id", *CONDITION_TAGS, "au", *metric_cols)))


def _check_fractions(participants: pd.DataFrame) -> None:
    bad = participants[participants["score"] > 1.0 + 1e-9]
    if not bad.empty:
        row = bad.iloc[0]
        raise DeepFNError(f"run {row['run_id']} logs participant/{row['participant']}/score = "
                          f"{row['score']:g}; scores must be fractions in [0, 1] (mean of F1 "
                          "and accuracy); fix the experiments stage's logging")


def _data_notes(runs: pd.DataFrame) -> list[str]:
    """What the report should mention about the runs (never an error)."""
    if runs.empty:
        return []
    notes = []
    if n := int((runs["n_participants"] == 0).sum()):
        notes.append(f"{n} run(s) logged no participant/<subject>/score metric")
    known = (runs["group"].isin(SPLITS) & runs["evaluation"].isin(("dependent", "independent"))
             & runs["normalization"].isin(METHODS))
    if n := int((~known).sum()):
        notes.append(f"{n} run(s) lack a known group / evaluation / normalization tag and are "
                     "left out of every table")
    if n := int((runs["n_aus_without_positives"].fillna(0) > 0).sum()):
        notes.append(f"{n} run(s) had AUs without positive test labels "
                     "(n_aus_without_positives > 0); their scores are as logged")
    return notes


def fetch_runs(uri: str | None = None, manifest: Manifest | str | Path | None = None,
               filter_string: str | None = None, *, max_results: int = PAGE_SIZE,
               configured_uri: str | None = None) -> RunTables:
    """The manifest's runs (or, without one, FINISHED model runs matching the tag filter).

    The store: ``uri`` > ``MLFLOW_TRACKING_URI`` > ``configured_uri`` (``tracking.uri``) > the
    manifest's ``tracking_uri`` > ``sqlite:///mlruns/mlflow.db``.
    """
    if manifest is not None and filter_string:
        raise DeepFNError("a tag filter selects runs only without a manifest; pass one or the "
                          "other")
    if manifest is not None and not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    store = Store(uri, configured=configured_uri or (manifest.tracking_uri if manifest else None))
    experiment = manifest.experiment if manifest else EXPERIMENT_AU
    t0 = time.perf_counter()
    where = f"the tracking store at {display_uri(store.uri)}"
    try:
        exp_id = store.find_experiment_id(experiment)
    except Exception as exc:  # unreachable server, unreadable database
        raise DeepFNError(f"cannot read {where} ({type(exc).__name__}); check --tracking-uri / "
                          "MLFLOW_TRACKING_URI") from None
    notes: list[str] = []
    if exp_id is None:
        if manifest is not None and manifest.run_ids:
            raise DeepFNError(f"{where} has no experiment {experiment!r} (listed in "
                              f"{manifest.path}); rerun dvc repro experiments")
        found: list[Any] = []
        notes.append(f"experiment {experiment!r} does not exist in the store: no runs")
    elif manifest is not None:
        found = _by_ids(store, exp_id, manifest.run_ids, FINISHED, max_results)
        missing = sorted(set(manifest.run_ids) - {r.info.run_id for r in found})
        if missing:
            _missing_error(store, exp_id, missing, manifest)
    else:
        flt = f"{FINISHED} and {MODEL_RUNS}" + (f" and {filter_string}" if filter_string else "")
        found = search_all(store, [exp_id], flt, max_results=max_results)
    runs, participants, per_au = tidy(found)
    _check_fractions(participants)
    notes += _data_notes(runs)
    return RunTables(runs=runs, participants=participants, per_au=per_au, uri=store.uri,
                     experiment=experiment, manifest=manifest,
                     filter_string=filter_string or "", seconds=time.perf_counter() - t0,
                     notes=tuple(notes))
