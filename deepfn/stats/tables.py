"""Table 5, the family of t-tests, the findings, Fig. 4-7 data: pure pandas on the tidy tables.

Definitions (scores in %, as in the paper):

* **condition** of a run: ``independent`` / ``dependent`` (original data) and
  ``<method>_independent`` / ``<method>_dependent`` for every other normalization method
  (``deepfn``, ``person_mean``, ``person_median``: :data:`METHODS`), from the tags
  ``normalization`` and ``evaluation``; a **split** is the ``group`` tag (person, gender, skin,
  dataset).  The paper's four conditions are always tabled; a baseline's two only when its runs
  are there (:func:`methods_in`).
* **participant observation**: one (run, participant) pair, the participant's score in that run
  (its AU scores averaged).  A participant tested in k runs of a cell counts k times, as in the
  paper ("average and standard deviation across all the participants"); cells also report the
  unique participants and repetitions behind them.
* **tests** per split (the paper's ``TESTS``, and for each baseline present
  :func:`method_tests`: the tests of findings (b)-(d) with the baseline in DeepFN's place, and
  the baseline against DeepFN, independent and dependent), each two-sided on participant
  observations.  The correction runs over one family per question: the paper's tests of every
  split (whether DeepFN helps: the same family, and the same p-values, whichever baselines are
  run), and each baseline's tests of every split (whether that baseline helps).  Findings (a)-(d)
  use the corrected Student p-values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepfn.config.settings import NORMALIZATIONS
from deepfn.stats.tests import adjust, compare, describe

__all__ = [
    "METHODS", "BASELINES", "METHOD_LABELS", "EVALUATIONS", "condition_of", "ALL_CONDITIONS",
    "methods_in", "conditions_for", "method_tests", "tests_for", "method_findings",
    "SPLITS", "CONDITIONS", "CONDITION_LABELS", "SPLIT_LABELS", "PAPER_TABLE5", "TESTS",
    "FINDINGS", "FINDING_TESTS", "TestSpec", "with_conditions", "cell_summary", "run_tests",
    "findings", "table5", "gap_is_significant", "combination_summary", "per_au_summary",
    "group_label", "headline_metrics", "plot_frames", "REFERENCE_LABELS", "reference_summary",
    "per_au_f1", "Analysis", "analyse",
]

SPLITS = ("person", "gender", "skin", "dataset")
METHODS: tuple[str, ...] = NORMALIZATIONS  # report order
BASELINES: tuple[str, ...] = tuple(m for m in METHODS if m not in ("original", "deepfn"))
METHOD_LABELS = {"original": "original", "deepfn": "DeepFN", "person_mean": "person mean",
                 "person_median": "person median"}
EVALUATIONS = ("independent", "dependent")


def condition_of(method: str, evaluation: str) -> str:
    """``independent`` (original data), ``deepfn_independent``, ``person_mean_dependent``..."""
    return evaluation if method == "original" else f"{method}_{evaluation}"


CONDITIONS = ("independent", "dependent", "deepfn_independent", "deepfn_dependent")
ALL_CONDITIONS = tuple(condition_of(m, e) for m in METHODS for e in EVALUATIONS)
CONDITION_LABELS = {condition_of(m, e): (e if m == "original" else f"{METHOD_LABELS[m]} {e}")
                    for m in METHODS for e in EVALUATIONS}


def methods_in(df: pd.DataFrame) -> tuple[str, ...]:
    """``original`` and ``deepfn`` (the paper's columns, always) plus every baseline with runs
    in ``df`` (a table with a ``normalization`` column), in :data:`METHODS` order."""
    present = set(df["normalization"].dropna()) if "normalization" in df else set()
    return tuple(m for m in METHODS if m in ("original", "deepfn") or m in present)


def conditions_for(methods: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(condition_of(m, e) for m in methods for e in EVALUATIONS)


SPLIT_LABELS = {"person": "Person", "gender": "Gender", "skin": "Skin type",
                "dataset": "Dataset"}
_GROUP_ORDER = {"person": ("others", "self"), "gender": ("F", "M"),
                "skin": ("lighter", "darker"), "dataset": ("bp4d", "disfa")}
_GROUP_LABELS = {"bp4d": "BP4D", "disfa": "DISFA"}

# Hernandez et al., Table 5 (%): independent, dependent, DeepFN independent, DeepFN dependent.
PAPER_TABLE5: dict[str, dict[str, float]] = {
    split: dict(zip(CONDITIONS, values, strict=True)) for split, values in {
        "person": (55.0, 60.3, 59.6, 61.4), "gender": (52.6, 55.0, 57.7, 60.2),
        "skin": (49.9, 55.2, 57.4, 58.7), "dataset": (44.6, 54.0, 51.1, 61.5)}.items()}


@dataclass(frozen=True)
class TestSpec:
    """One comparison per split: condition a vs condition b (difference a - b)."""

    id: str
    a: str
    b: str
    finding: str | None
    paper_p: Mapping[str, str]  # what §5 reports per split ("" = not reported)
    method: str = "deepfn"  # the normalization method the test is about


TESTS = (
    TestSpec("gap", "dependent", "independent", "a",
             {"person": "<0.001", "gender": "0.009", "skin": "0.025", "dataset": "<0.001"}),
    TestSpec("deepfn_gain_independent", "deepfn_independent", "independent", "b",
             {"person": "<0.001", "gender": "<0.001", "skin": "<0.001", "dataset": "<0.001"}),
    TestSpec("deepfn_independent_vs_dependent", "deepfn_independent", "dependent", "c",
             {"person": "0.375", "skin": "0.290"}),
    TestSpec("deepfn_gain_dependent", "deepfn_dependent", "dependent", "d",
             {"person": "0.388", "gender": "<0.001", "skin": "0.110", "dataset": "<0.001"}),
    TestSpec("deepfn_gap", "deepfn_dependent", "deepfn_independent", None,
             {"dataset": "<0.001"}),
)
FINDINGS = {
    "a": "gap: dependent > independent on original data, significantly",
    "b": "DeepFN raises independent significantly",
    "c": "DeepFN independent reaches original dependent (not significantly lower)",
    "d": "DeepFN does not hurt dependent (not significantly lower)",
}
FINDING_TESTS = {t.finding: t for t in TESTS if t.finding}  # "a" -> the gap test, ...


def method_tests(method: str) -> tuple[TestSpec, ...]:
    """A baseline's tests: findings (b)-(d) with ``method`` in DeepFN's place, then ``method``
    against DeepFN (independent, dependent).  The paper has no p-value for any of them."""
    ind, dep = condition_of(method, "independent"), condition_of(method, "dependent")
    return (TestSpec(f"{method}_gain_independent", ind, "independent", "b", {}, method),
            TestSpec(f"{method}_independent_vs_dependent", ind, "dependent", "c", {}, method),
            TestSpec(f"{method}_gain_dependent", dep, "dependent", "d", {}, method),
            TestSpec(f"{method}_vs_deepfn_independent", ind, "deepfn_independent", None, {},
                     method),
            TestSpec(f"{method}_vs_deepfn_dependent", dep, "deepfn_dependent", None, {},
                     method))


def tests_for(methods: tuple[str, ...]) -> tuple[TestSpec, ...]:
    """The paper's tests, then each baseline's of ``methods``."""
    return TESTS + tuple(t for m in methods if m in BASELINES for t in method_tests(m))


def group_label(value: str) -> str:
    return _GROUP_LABELS.get(value, value)


def with_conditions(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``split`` (the ``group`` tag) and ``condition``; scores become percent."""
    out = df.copy()
    out["split"] = out["group"]
    prefix = out["normalization"].map({m: condition_of(m, "") for m in METHODS})
    evaluation = out["evaluation"].where(out["evaluation"].isin(("dependent", "independent")))
    out["condition"] = prefix + evaluation
    for col in ("score", "f1", "accuracy"):
        if col in out:
            out[col] = out[col] * 100.0
    return out


def _cells(obs: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    return {(str(split), str(cond)): g
            for (split, cond), g in obs.groupby(["split", "condition"], sort=False)}


def _describe_cell(g: pd.DataFrame | None, confidence: float) -> dict[str, object]:
    if g is None or g.empty:
        return {"n_obs": 0, "n_participants": 0, "n_repetitions": 0, "n_runs": 0,
                **{k: np.nan for k in ("mean", "sd", "se", "ci_low", "ci_high")},
                "note": "n/a: no runs"}
    s = describe(g["score"].to_numpy(), confidence).as_dict()
    n = s.pop("n")
    return {"n_obs": n, "n_participants": g["participant"].nunique(),
            "n_repetitions": g["repetition"].nunique(), "n_runs": g["run_id"].nunique(), **s,
            "note": "" if n >= 2 else f"n/a: {n} observation(s), need 2 for SD/SE"}


def cell_summary(participants: pd.DataFrame, confidence: float = 0.95,
                 methods: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The Table 5 cells (split x condition of ``methods``, default :func:`methods_in`: the
    paper's 16 plus 8 per baseline), with the paper's value alongside (NaN for baselines)."""
    cells = _cells(with_conditions(participants))
    conds = conditions_for(methods_in(participants) if methods is None else methods)
    rows = [{"split": split, "condition": cond,
             "paper": PAPER_TABLE5[split].get(cond, np.nan),
             **_describe_cell(cells.get((split, cond)), confidence)}
            for split in SPLITS for cond in conds]
    return pd.DataFrame(rows)


def _participant_means(g: pd.DataFrame | None) -> np.ndarray:
    if g is None:
        return np.array([])
    return g.groupby("participant")["score"].mean().to_numpy()


def run_tests(participants: pd.DataFrame, *, alpha: float = 0.05,
              correction: str = "holm", methods: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Every test of :func:`tests_for` ``methods`` (default :func:`methods_in`) for every split,
    with the family-wise corrected p-values (one family per method: the paper's tests, then
    each baseline's).

    ``p_participant_level`` (beyond the paper, uncorrected) repeats Student's test with each
    unique participant once (its mean over runs): a check against pseudo-replication.
    """
    cells = _cells(with_conditions(participants))
    specs = tests_for(methods_in(participants) if methods is None else methods)
    rows = []
    for split in SPLITS:
        for t in specs:
            a, b = cells.get((split, t.a)), cells.get((split, t.b))
            x = a["score"].to_numpy() if a is not None else np.array([])
            y = b["score"].to_numpy() if b is not None else np.array([])
            c = compare(x, y, 1 - alpha).as_dict()
            level = compare(_participant_means(a), _participant_means(b), 1 - alpha)
            note = "" if min(x.size, y.size) >= 2 else (
                f"n/a: {t.a} has {x.size} and {t.b} has {y.size} observations (need >= 2 each)")
            rows.append({"split": split, "test": t.id, "method": t.method,
                         "finding": t.finding or "", "a": t.a, "b": t.b, **c,
                         "p_participant_level": level.p_student,
                         "paper_p": t.paper_p.get(split, ""), "note": note})
    df = pd.DataFrame(rows)
    for _, family in df.groupby("method", sort=False):  # one family per method (see module doc)
        i = family.index
        df.loc[i, "p_corrected"] = adjust(family["p_student"].to_numpy(), correction)
        df.loc[i, "p_welch_corrected"] = adjust(family["p_welch"].to_numpy(), correction)
        df.loc[i, "family_size"] = int(np.isfinite(family["p_student"]).sum())
    df["family_size"] = df["family_size"].astype(int)
    df["correction"] = correction
    return df


def _verdict(row: pd.Series, finding: str, alpha: float) -> str:
    p, diff = float(row["p_corrected"]), float(row["diff"])
    if not np.isfinite(p):
        return "n/a"
    significant = p < alpha
    if finding in ("a", "b"):  # must be significantly higher
        return "yes" if diff > 0 and significant else "no"
    return "no" if diff < 0 and significant else "yes"  # (c), (d): not significantly lower


def findings(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per split: "yes" / "no" / "n/a" for findings (a)-(d), from the corrected p-values."""
    rows = []
    for split in SPLITS:
        row: dict[str, str] = {"split": split}
        for f, t in FINDING_TESTS.items():
            hit = tests[(tests["split"] == split) & (tests["test"] == t.id)]
            row[f"finding_{f}"] = _verdict(hit.iloc[0], f, alpha) if len(hit) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def _versus(row: pd.Series, alpha: float) -> str:
    """A test against DeepFN: "higher" / "lower" (corrected p < alpha), "no difference", n/a."""
    p, diff = float(row["p_corrected"]), float(row["diff"])
    if not np.isfinite(p):
        return "n/a"
    return ("higher" if diff > 0 else "lower") if p < alpha else "no difference"


def method_findings(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per split and baseline in ``tests``: findings (b)-(d) with the baseline in DeepFN's place
    (``finding_b`` ...: yes / no / n/a) and the baseline against DeepFN
    (``vs_deepfn_independent`` / ``vs_deepfn_dependent``: higher / lower / no difference /
    n/a), all from the corrected p-values; with each test's difference and corrected p."""
    cols = ["split", "method"]
    rows = []
    methods = [m for m in BASELINES if "method" in tests and (tests["method"] == m).any()]
    for split in SPLITS:
        for m in methods:
            row: dict[str, object] = {"split": split, "method": m}
            for t in method_tests(m):
                name = f"finding_{t.finding}" if t.finding else t.id.removeprefix(f"{m}_")
                hit = tests[(tests["split"] == split) & (tests["test"] == t.id)]
                if not len(hit):
                    row[name], row[f"{name}_diff"], row[f"{name}_p"] = "n/a", np.nan, np.nan
                    continue
                r = hit.iloc[0]
                if t.finding:
                    row[name] = _verdict(r, t.finding, alpha)
                else:
                    row[name] = _versus(r, alpha)
                row[f"{name}_diff"], row[f"{name}_p"] = r["diff"], r["p_corrected"]
            rows.append(row)
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


def table5(cells: pd.DataFrame, tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per split: the paper's four means, ours (+ SE, n) for every condition in
    ``cells`` (a column pair per baseline), gap, p-values, findings (a)-(d) and each baseline's
    (``<method>_finding_b`` ..., ``<method>_vs_deepfn_independent`` ...)."""
    rows = []
    found = findings(tests, alpha).set_index("split")
    by_method = method_findings(tests, alpha)
    present = set(cells["condition"])
    conds = [c for c in ALL_CONDITIONS if c in present]
    ids = set(tests["test"]) if len(tests) else set()
    specs = [t for t in tests_for(METHODS) if t.id in ids]
    for split in SPLITS:
        row: dict[str, object] = {"split": split}
        c = cells[cells["split"] == split].set_index("condition")
        for cond in CONDITIONS:
            row[f"paper_{cond}"] = PAPER_TABLE5[split][cond]
        for cond in conds:
            row[cond] = c.at[cond, "mean"]
            row[f"{cond}_se"] = c.at[cond, "se"]
            row[f"{cond}_n"] = c.at[cond, "n_obs"]
            row[f"{cond}_participants"] = c.at[cond, "n_participants"]
            row[f"{cond}_repetitions"] = c.at[cond, "n_repetitions"]
        paper = PAPER_TABLE5[split]
        row["paper_gap"] = round(paper["dependent"] - paper["independent"], 1)
        t = tests[tests["split"] == split].set_index("test")
        row["gap"] = t.at["gap", "diff"]
        row["gap_ci_low"], row["gap_ci_high"] = t.at["gap", "diff_ci_low"], t.at["gap",
                                                                                  "diff_ci_high"]
        for spec in specs:
            row[f"p_{spec.id}"] = t.at[spec.id, "p_student"]
            row[f"p_{spec.id}_corrected"] = t.at[spec.id, "p_corrected"]
        row.update({str(k): v for k, v in found.loc[split].items()})
        for _, f in by_method[by_method["split"] == split].iterrows():
            row.update({f"{f['method']}_{k}": v for k, v in f.items()
                        if k not in ("split", "method")})
        notes = [f"{cond}: {c.at[cond, 'note']!s}" for cond in conds if c.at[cond, "note"]]
        empty = (c["n_obs"] == 0).all()
        row["note"] = "n/a: no runs for this split" if empty else "; ".join(notes)
        rows.append(row)
    df = pd.DataFrame(rows)
    df["alpha"] = alpha
    df["correction"] = tests["correction"].iloc[0] if len(tests) else "none"
    return df


def gap_is_significant(table: pd.DataFrame, split: str) -> bool:
    """Finding (a) in ``table`` (a :func:`table5` frame, or ``reports/table5.csv`` read back).

    True iff dependent > independent on original data with corrected p < alpha.  Raises
    ``ValueError`` where the split has no test (n/a), so missing data never passes for a
    vanished gap in the negative control.
    """
    row = table[table["split"] == split]
    if row.empty or row.iloc[0]["finding_a"] not in ("yes", "no"):
        raise ValueError(f"split {split!r} has no gap test (n/a): not enough observations")
    return bool(row.iloc[0]["finding_a"] == "yes")


def _ordered(values: pd.Series, split: str) -> list[str]:
    known = [v for v in _GROUP_ORDER.get(split, ()) if v in set(values)]
    return known + sorted(set(values) - set(known))


def combination_summary(participants: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per split x train group -> test group x normalization (Figs. 5-7): mean, SE, n."""
    obs = with_conditions(participants)
    obs = obs[obs["split"].isin(SPLITS) & obs["condition"].notna()]
    methods = methods_in(participants)
    rows = []
    for split in SPLITS:
        s = obs[obs["split"] == split]
        groups = _ordered(pd.concat([s["train_group"], s["test_group"]]).dropna(), split)
        pairs = [(g, g) for g in groups] + [(a, b) for a in groups for b in groups if a != b]
        for train, test in pairs:
            g = s[(s["train_group"] == train) & (s["test_group"] == test)]
            if g.empty:
                continue
            for norm in methods:
                cell = g[g["normalization"] == norm]
                rows.append({"split": split, "train_group": train, "test_group": test,
                             "evaluation": g["evaluation"].iloc[0], "normalization": norm,
                             **_describe_cell(cell if len(cell) else None, confidence)})
    cols = ["split", "train_group", "test_group", "evaluation", "normalization", "n_obs",
            "n_participants", "n_repetitions", "n_runs", "mean", "sd", "se", "ci_low",
            "ci_high", "note"]
    return pd.DataFrame(rows, columns=cols)


def per_au_summary(per_au: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Fig. 4: person-independent models per AU and normalization; n = runs (run-level scores)."""
    obs = with_conditions(per_au)
    obs = obs[(obs["split"] == "person") & (obs["evaluation"] == "independent")]
    methods = methods_in(per_au)
    rows = []
    for au in sorted(obs["au"].dropna().unique()):
        for norm in methods:
            g = obs[(obs["au"] == au) & (obs["normalization"] == norm)]
            s = describe(g["score"].to_numpy(), confidence).as_dict()
            rows.append({"au": au, "normalization": norm, **s})
    return pd.DataFrame(rows, columns=["au", "normalization", "n", "mean", "sd", "se", "ci_low",
                                       "ci_high"])


REFERENCE_LABELS = {"absent": "all-absent", "random": "random (training prevalence)",
                    "majority": "majority label of the training data"}


def reference_summary(runs: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Per split and evaluation (original data): the models' score and F1 beside the reference
    classifiers' on the same test frames (``ref_<name>_<metric>`` run metrics), all in %, mean
    over runs.  ``majority`` is the subject's own majority label for person-dependent models."""
    cols = ["split", "evaluation", "what", "score", "f1", "accuracy", "n_runs"]
    if runs.empty or "ref_absent_score" not in runs:
        return pd.DataFrame(columns=cols)
    obs = with_conditions(participants)
    obs = obs[obs["normalization"] == "original"]
    r = runs[runs["normalization"] == "original"]
    rows = []
    for split in SPLITS:
        for ev in ("dependent", "independent"):
            g = r[(r["group"] == split) & (r["evaluation"] == ev)]
            o = obs[(obs["split"] == split) & (obs["evaluation"] == ev)]
            if g.empty:
                continue
            rows.append({"split": split, "evaluation": ev, "what": "model",
                         **{m: o[m].mean() for m in ("score", "f1", "accuracy")},
                         "n_runs": len(g)})
            for ref in REFERENCE_LABELS:
                vals = {m: 100.0 * pd.to_numeric(g[f"ref_{ref}_{m}"], errors="coerce").mean()
                        for m in ("score", "f1", "accuracy")}
                rows.append({"split": split, "evaluation": ev, "what": ref, **vals,
                             "n_runs": len(g)})
    return pd.DataFrame(rows, columns=cols)


def per_au_f1(per_au: pd.DataFrame) -> pd.DataFrame:
    """Per split, condition and AU: F1 (%) as mean ± SD over repetitions (each repetition the
    mean of its runs of that condition; the field's per-AU convention)."""
    cols = ["split", "condition", "au", "mean", "sd", "n_repetitions"]
    if per_au.empty or "f1" not in per_au:
        return pd.DataFrame(columns=cols)
    obs = with_conditions(per_au).dropna(subset=["condition", "f1"])
    if obs.empty:
        return pd.DataFrame(columns=cols)
    by_rep = obs.groupby(["split", "condition", "au", "repetition"])["f1"].mean().reset_index()
    out = by_rep.groupby(["split", "condition", "au"])["f1"].agg(
        mean="mean", sd=lambda v: v.std(ddof=1) if len(v) > 1 else np.nan,
        n_repetitions="count").reset_index()
    order = {c: i for i, c in enumerate(ALL_CONDITIONS)}
    out["_s"] = out["split"].map({s: i for i, s in enumerate(SPLITS)})
    out["_c"] = out["condition"].map(order)
    return out.sort_values(["_s", "_c", "au"])[cols].reset_index(drop=True)


def _num(x: object) -> float | None:
    """JSON-safe number (NaN -> None), 6 significant digits (tiny p-values stay non-zero)."""
    v = float(x)  # type: ignore[arg-type]
    return float(f"{v:.6g}") if np.isfinite(v) else None


def headline_metrics(table: pd.DataFrame, n: Mapping[str, int]) -> dict[str, object]:
    """``reports/metrics.json``: per split the four means, the gaps and the p-values."""
    out: dict[str, object] = {k: int(v) for k, v in n.items()}
    conds = [c for c in ALL_CONDITIONS if c in table.columns]
    specs = [t for t in tests_for(METHODS) if f"p_{t.id}" in table.columns]
    for _, r in table.iterrows():
        m = {cond: _num(r[cond]) for cond in conds}
        m["gap"] = _num(r["gap"])
        m["deepfn_gap"] = _num(r["deepfn_dependent"] - r["deepfn_independent"])
        for spec in specs:
            m[f"p_{spec.id}"] = _num(r[f"p_{spec.id}"])
            m[f"p_{spec.id}_corrected"] = _num(r[f"p_{spec.id}_corrected"])
        out[str(r["split"])] = m
    return out


def plot_frames(cells: pd.DataFrame, per_au: pd.DataFrame,
                combos: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tidy CSVs for ``dvc plots show`` (``label`` is the bar's y-axis name)."""
    t5 = cells[["split", "condition", "mean", "se", "n_obs"]].rename(columns={"mean": "score"})
    t5.insert(2, "label", t5["split"] + " / " + t5["condition"])
    au = per_au[["au", "normalization", "mean", "se", "n"]].rename(columns={"mean": "score"})
    au.insert(2, "label", au["au"] + " / " + au["normalization"])
    co = combos[["split", "train_group", "test_group", "normalization", "mean", "se",
                 "n_obs"]].rename(columns={"mean": "score"})
    co.insert(5, "label", co["split"] + ": " + co["train_group"].map(group_label) + " -> "
              + co["test_group"].map(group_label) + " / " + co["normalization"])
    return {"table5": t5.round(4), "per_au": au.round(4), "combinations": co.round(4)}


@dataclass(frozen=True)
class Analysis:
    """Everything the report, the figures and ``metrics.json`` are made of (scores in %)."""

    cells: pd.DataFrame
    tests: pd.DataFrame
    table5: pd.DataFrame
    combinations: pd.DataFrame
    per_au: pd.DataFrame
    alpha: float
    correction: str
    references: pd.DataFrame | None = None  # reference_summary (None: no runs table given)
    per_au_f1: pd.DataFrame | None = None  # per_au_f1
    methods: tuple[str, ...] = ("original", "deepfn")  # methods_in the participants


def analyse(participants: pd.DataFrame, per_au: pd.DataFrame, *, alpha: float = 0.05,
            correction: str = "holm", runs: pd.DataFrame | None = None) -> Analysis:
    """Cells, the test family, Table 5 with findings, Figs. 4-7 summaries; CIs at 1 - alpha;
    with ``runs`` the reference rows; per-AU F1 over repetitions."""
    methods = methods_in(participants)
    cells = cell_summary(participants, 1 - alpha, methods)
    tests = run_tests(participants, alpha=alpha, correction=correction, methods=methods)
    return Analysis(cells=cells, tests=tests, table5=table5(cells, tests, alpha),
                    combinations=combination_summary(participants, 1 - alpha),
                    per_au=per_au_summary(per_au, 1 - alpha), alpha=alpha,
                    correction=correction,
                    references=None if runs is None else reference_summary(runs, participants),
                    per_au_f1=per_au_f1(per_au), methods=methods)
