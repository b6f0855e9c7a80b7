"""Markdown a researcher can paste from: ``table5.md`` and ``report.md``.

Numbers are percent with one decimal (like the paper's Table 5); p-values three decimals or
"<0.001"; anything that could not be computed is "n/a" with the reason in a note.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from deepfn.stats.runs import RunTables, display_uri
from deepfn.stats.tables import (
    ALL_CONDITIONS,
    BASELINES,
    CONDITION_LABELS,
    CONDITIONS,
    EVALUATIONS,
    FINDING_TESTS,
    FINDINGS,
    METHOD_LABELS,
    REFERENCE_LABELS,
    SPLIT_LABELS,
    SPLITS,
    Analysis,
    condition_of,
)

__all__ = ["fmt_pct", "fmt_p", "fmt_p_eq", "table5_markdown", "baselines_markdown",
           "tests_markdown", "findings_text", "references_markdown", "per_au_f1_markdown",
           "report_markdown", "PAPER_TEST"]

PAPER_TEST = ("two-sample Student's t-test (equal variances; `scipy.stats.ttest_ind(..., "
              "equal_var=True)`), two-sided, on participant observations")
_VERDICT = {"yes": "reproduced", "no": "**not reproduced**", "n/a": "n/a (too few observations)"}
_CORRECTION = {"holm": "Holm", "bonferroni": "Bonferroni", "none": "uncorrected"}


def fmt_pct(x: object, signed: bool = False) -> str:
    v = float(x)  # type: ignore[arg-type]
    if not np.isfinite(v):
        return "n/a"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def fmt_p(p: object) -> str:
    v = float(p)  # type: ignore[arg-type]
    if not np.isfinite(v):
        return "n/a"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def fmt_p_eq(p: object) -> str:
    """Prose form of :func:`fmt_p`: ``p < 0.001`` or ``p = 0.012``."""
    text = fmt_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _md(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _mean_cell(r: pd.Series, cond: str) -> str:
    ours, se, n = fmt_pct(r[cond]), fmt_pct(r[f"{cond}_se"]), int(r[f"{cond}_n"])
    return f"{ours} ± {se}" if se != "n/a" else (f"{ours} (n={n})" if n else "n/a")


def _baselines(table: pd.DataFrame) -> list[str]:
    """The baselines with a column pair in ``table`` (a :func:`table5` frame)."""
    return [m for m in BASELINES if f"{condition_of(m, 'independent')}" in table.columns]


def table5_markdown(table: pd.DataFrame, correction: str) -> str:
    """Means (paper vs ours, then a column pair ind. / dep. per baseline), findings (corrected
    p), each baseline against original and DeepFN, the n behind each cell."""
    baselines = _baselines(table)
    means = []
    for _, r in table.iterrows():
        row: list[object] = [SPLIT_LABELS[r["split"]]]
        for cond in CONDITIONS:
            row += [fmt_pct(r[f"paper_{cond}"]), _mean_cell(r, cond)]
        for m in baselines:
            row += [_mean_cell(r, condition_of(m, e)) for e in EVALUATIONS]
        row += [fmt_pct(r["paper_gap"], True), fmt_pct(r["gap"], True)]
        means.append(row)
    head = ["Split"]
    for cond in CONDITIONS:
        head += [f"{CONDITION_LABELS[cond]} (paper)", "ours ± SE"]
    for m in baselines:
        head += [f"{METHOD_LABELS[m]} ind. ± SE", f"{METHOD_LABELS[m]} dep. ± SE"]
    head += ["gap (paper)", "gap (ours)"]
    out = ["Score (%) = mean of per-AU F1 and accuracy at the model's decision thresholds "
           "(`experiments.thresholds`: the paper's 0.5, or per AU from the validation part), "
           "averaged per participant; "
           "ours: mean ± SE over participant observations."
           + (" Person-calibration baselines (no paper values): each person's "
              f"{' / '.join(m.removeprefix('person_') for m in baselines)} frame swapped for "
              "the template's (docs/normalizer.md)." if baselines else ""),
           "", _md(head, means), ""]
    corr = _CORRECTION.get(correction, correction)
    rows = []
    for _, r in table.iterrows():
        row = [SPLIT_LABELS[r["split"]]]
        for f, spec in FINDING_TESTS.items():
            verdict = r[f"finding_{f}"]
            p = r[f"p_{spec.id}_corrected"]
            dagger = "" if spec.paper_p.get(r["split"]) else " †"
            row.append(verdict if verdict == "n/a" else f"{verdict} ({fmt_p_eq(p)}){dagger}")
        rows.append(row)
    out += [f"Findings reproduced? ({corr}-corrected p of the paper's Student's t-test, "
            f"alpha = {table['alpha'].iloc[0]:g})", "",
            _md(["Split"] + [f"({f}) {FINDINGS[f]}" for f in "abcd"], rows), "",
            "† the paper reports no p-value for this comparison on this split.", ""]
    if baselines:
        out += [baselines_markdown(table, corr)]
    conds = [c for c in ALL_CONDITIONS if f"{c}_n" in table.columns]
    n_rows = [[SPLIT_LABELS[r["split"]]]
              + [f"{int(r[f'{c}_n'])} / {int(r[f'{c}_participants'])} / "
                 f"{int(r[f'{c}_repetitions'])}" for c in conds] for _, r in table.iterrows()]
    out += ["Observations / unique participants / repetitions behind each cell:", "",
            _md(["Split"] + [CONDITION_LABELS[c] for c in conds], n_rows)]
    notes = [f"- {SPLIT_LABELS[r['split']]}: {r['note']}" for _, r in table.iterrows()
             if r["note"]]
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out) + "\n"


_BASELINE_COLUMNS = (("finding_b", "(b) raises independent"),
                     ("finding_c", "(c) independent reaches original dependent"),
                     ("finding_d", "(d) does not hurt dependent"),
                     ("vs_deepfn_independent", "vs DeepFN, independent"),
                     ("vs_deepfn_dependent", "vs DeepFN, dependent"))


def baselines_markdown(table: pd.DataFrame, corr: str) -> str:
    """Each baseline per split: findings (b)-(d) with it in DeepFN's place, and it against
    DeepFN; a cell is the verdict, the difference in points and the corrected p."""
    rows = []
    for m in _baselines(table):
        for _, r in table.iterrows():
            cells = []
            for col, _ in _BASELINE_COLUMNS:
                verdict = r.get(f"{m}_{col}", "n/a")
                diff, p = r.get(f"{m}_{col}_diff", np.nan), r.get(f"{m}_{col}_p", np.nan)
                cells.append(verdict if verdict == "n/a" else
                             f"{verdict} ({fmt_pct(diff, True)}, {fmt_p_eq(p)})")
            rows.append([METHOD_LABELS[m], SPLIT_LABELS[r["split"]], *cells])
    return (f"Person-calibration baselines vs original and DeepFN ({corr}-corrected p, same "
            "tests as above, each baseline's own corrected family; Δ in points, baseline minus "
            "the other condition):\n\n"
            + _md(["Baseline", "Split", *[h for _, h in _BASELINE_COLUMNS]], rows) + "\n")


def references_markdown(refs: pd.DataFrame | None) -> str:
    """The models beside trivial classifiers on the same test frames (original data)."""
    if refs is None or refs.empty:
        return ("No reference metrics in these runs (logged by the experiments stage as "
                "`reference/<name>/<metric>`; rerun it).\n")
    rows = []
    for (split, ev), g in refs.groupby(["split", "evaluation"], sort=False):
        for _, r in g.iterrows():
            if r["what"] == "majority" and not (split == "person" and ev == "dependent"):
                continue  # the subject's majority label: person-dependent only
            what = ("**model**" if r["what"] == "model" else
                    "majority label of the subject" if r["what"] == "majority"
                    else REFERENCE_LABELS[r["what"]])
            rows.append([SPLIT_LABELS[str(split)], ev, what, fmt_pct(r["score"]), fmt_pct(r["f1"]),
                         fmt_pct(r["accuracy"]), int(r["n_runs"])])
    return ("Original data, mean over runs (%). References are expected values on each run's "
            "own test frames: *all-absent* predicts no AU; *random* predicts each AU present at "
            "random with the AU's prevalence in the model's training frames; the *majority "
            "label of the subject* (person-dependent) predicts, per AU, the label most frequent "
            "in the subject's own training frames.\n\n"
            + _md(["Split", "Evaluation", "Classifier", "Score", "F1", "Accuracy", "Runs"], rows)
            + "\n")


def per_au_f1_markdown(table: pd.DataFrame | None) -> str:
    """One table per split: rows = conditions, columns = AUs, cells = F1 % mean ± SD."""
    if table is None or table.empty:
        return "No per-AU metrics in these runs.\n"
    out = ["Test F1 (%) per AU, mean ± SD over repetitions (each repetition: the mean of its "
           "runs of that condition). Paper scores are (F1 + accuracy) / 2; this is the F1 "
           "alone, the field's usual per-AU figure.", ""]
    for split in SPLITS:
        t = table[table["split"] == split]
        if t.empty:
            continue
        aus = sorted(t["au"].unique())
        rows = []
        for cond in ALL_CONDITIONS:
            c = t[t["condition"] == cond].set_index("au")
            if c.empty:
                continue
            cells = []
            for au in aus:
                if au not in c.index:
                    cells.append("n/a")
                    continue
                m, sd = c.loc[au, "mean"], c.loc[au, "sd"]
                cells.append(fmt_pct(m) + ("" if not np.isfinite(sd) else f" ± {sd:.1f}"))
            mean = c["mean"].mean()
            rows.append([CONDITION_LABELS[cond], *cells, fmt_pct(mean),
                         int(c["n_repetitions"].max())])
        out += [f"**{SPLIT_LABELS[split]}**", "",
                _md(["Condition", *[a.replace("AU0", "AU") for a in aus], "mean", "reps"],
                    rows), ""]
    return "\n".join(out) + "\n"


def tests_markdown(tests: pd.DataFrame) -> str:
    rows = []
    for _, t in tests.iterrows():
        ci = (f"[{fmt_pct(t['diff_ci_low'], True)}, {fmt_pct(t['diff_ci_high'], True)}]")
        tdf = ("n/a" if not np.isfinite(t["t_student"])
               else f"t({t['df_student']:.0f}) = {t['t_student']:.2f}")
        finding = f"({t['finding']})" if t["finding"] else ""
        if finding and t.get("method", "deepfn") != "deepfn":
            finding += f" {METHOD_LABELS.get(str(t['method']), t['method'])}"
        rows.append([SPLIT_LABELS[t["split"]], f"{CONDITION_LABELS[t['a']]} − "
                     f"{CONDITION_LABELS[t['b']]}", finding,
                     fmt_pct(t["diff"], True), ci, tdf, fmt_p(t["p_student"]),
                     fmt_p(t["p_corrected"]), fmt_p(t["p_welch"]),
                     "n/a" if not np.isfinite(t["cohens_d"]) else f"{t['cohens_d']:.2f}",
                     "n/a" if not np.isfinite(t["hedges_g"]) else f"{t['hedges_g']:.2f}",
                     fmt_p(t["p_participant_level"]), t["paper_p"] or "—"])
    head = ["Split", "a − b", "finding", "Δ (points)", "CI of Δ", "Student", "p", "p corrected",
            "Welch p", "d", "g", "p (participant means)", "paper p"]
    return _md(head, rows) + "\n"


def _test_row(tests: pd.DataFrame, split: str, test: str) -> pd.Series:
    return tests[(tests["split"] == split) & (tests["test"] == test)].iloc[0]


def _why(test: pd.Series) -> str:
    return str(test["note"]).removeprefix("n/a: ") or "no data"


def findings_text(a: Analysis) -> list[str]:
    """One paragraph per split, the findings in words."""
    corr = _CORRECTION.get(a.correction, a.correction)
    paras = []
    for _, r in a.table5.iterrows():
        split = r["split"]
        gap = _test_row(a.tests, split, "gap")
        words = [f"**{SPLIT_LABELS[split]}.**"]
        if all(r[f"{c}_n"] == 0 for c in CONDITIONS):
            paras.append(f"{words[0]} No runs for this split: every cell and finding is n/a.")
            continue
        if r["finding_a"] == "n/a":
            words.append(f"(a) n/a: {_why(gap)}.")
        else:
            words.append(
                f"On original data, dependent models scored {fmt_pct(r['dependent'])}% and "
                f"independent models {fmt_pct(r['independent'])}%: a gap of "
                f"{fmt_pct(r['gap'], True)} points (CI {fmt_pct(r['gap_ci_low'], True)} to "
                f"{fmt_pct(r['gap_ci_high'], True)}; Student's t({gap['df_student']:.0f}) = "
                f"{gap['t_student']:.2f}, {fmt_p_eq(gap['p_student'])}, {corr}-corrected "
                f"{fmt_p_eq(gap['p_corrected'])}, d = {gap['cohens_d']:.2f}; paper: "
                f"{fmt_pct(r['paper_gap'], True)} points) — (a) {_VERDICT[r['finding_a']]}.")
        for f, text in (("b", "DeepFN moved independent models to"),
                        ("c", "DeepFN independent vs original dependent:"),
                        ("d", "DeepFN dependent vs original dependent:")):
            t = _test_row(a.tests, split, FINDING_TESTS[f].id)
            if r[f"finding_{f}"] == "n/a":
                words.append(f"({f}) n/a: {_why(t)}.")
                continue
            lead = (f"{text} {fmt_pct(t['mean_a'])}% ({fmt_pct(t['diff'], True)} points"
                    if f == "b" else f"{text} {fmt_pct(t['diff'], True)} points (")
            sep = ", " if f == "b" else ""
            words.append(f"{lead}{sep}{corr}-corrected {fmt_p_eq(t['p_corrected'])}) — "
                         f"({f}) {_VERDICT[r[f'finding_{f}']]}.")
        words += [_baseline_words(a.tests, split, m) for m in a.methods if m in BASELINES]
        paras.append(" ".join(words))
    return paras


def _baseline_words(tests: pd.DataFrame, split: str, method: str) -> str:
    """One sentence: the baseline's independent and dependent scores against original and
    DeepFN (differences in points, corrected p)."""
    parts = []
    for ev in EVALUATIONS:
        vs_orig = _test_row(tests, split, f"{method}_gain_{ev}")
        vs_dfn = _test_row(tests, split, f"{method}_vs_deepfn_{ev}")
        if not np.isfinite(float(vs_orig["p_corrected"])):
            parts.append(f"{ev} n/a ({_why(vs_orig)})")
            continue
        parts.append(f"{ev} {fmt_pct(vs_orig['mean_a'])}% ({fmt_pct(vs_orig['diff'], True)} vs "
                     f"original, {fmt_p_eq(vs_orig['p_corrected'])}; "
                     f"{fmt_pct(vs_dfn['diff'], True)} vs DeepFN, "
                     f"{fmt_p_eq(vs_dfn['p_corrected'])})")
    return f"{METHOD_LABELS[method].capitalize()}: {'; '.join(parts)}."


def _provenance(tables: RunTables) -> list[list[object]]:
    runs = tables.runs
    parts = tables.participants
    man = tables.manifest
    by_split = ", ".join(f"{s} {int((runs['group'] == s).sum())}" for s in SPLITS) if len(
        runs) else "none"
    reps = parts["repetition"].nunique() if len(parts) else 0
    return [
        ["tracking store", f"`{display_uri(tables.uri)}`, experiment `{tables.experiment}`"],
        ["selection", f"run ids of `{man.path}` (sha256 `{man.sha256[:12]}`)" if man else
         f"FINISHED model runs, filter `{tables.filter_string or '(none)'}`"],
        ["profile", ", ".join(tables.distinct("profile")) or "unknown"],
        ["data version", ", ".join(tables.distinct("data_version"))
         or (man.data_version if man and man.data_version else "unknown")],
        ["git commit (experiments)", ", ".join(tables.distinct("git_commit")) or "unknown"],
        ["model runs", f"{len(runs)} ({by_split})"],
        ["participant observations", f"{len(parts)} (run × test participant pairs)"],
        ["unique participants", parts["participant"].nunique() if len(parts) else 0],
        ["repetitions", reps],
    ]


def report_markdown(a: Analysis, tables: RunTables, *, figures: Sequence[str],
                    stats_run_id: str | None = None) -> str:
    corr = _CORRECTION.get(a.correction, a.correction)
    paper_tests = a.tests[a.tests["method"] == "deepfn"] if len(a.tests) else a.tests
    family = int(paper_tests["family_size"].iloc[0]) if len(paper_tests) else 0
    per_baseline = ("; each baseline's tests another family of their own"
                    if len(a.tests) and (a.tests["method"] != "deepfn").any() else "")
    prov = _provenance(tables) + [
        ["tests", f"the paper's {PAPER_TEST}; {corr} correction over the family of the "
                  f"paper's {family} tests{per_baseline}; alpha = {a.alpha:g}; "
                  f"CIs at {100 * (1 - a.alpha):g}%"]]
    if stats_run_id:
        prov.append(["MLflow stats run", f"`{stats_run_id}` (experiment `deepfn-stats`)"])
    out = ["# DeepFN reproduction: Table 5, tests and figures", "",
           "Generated by the `stats` stage (`deepfn stats`) from the experiments stage's MLflow "
           "runs. Scores are percent: per AU the mean of F1 and accuracy at the model's decision "
           "threshold (the paper's 0.5, or chosen per AU on the validation part: "
           "`experiments.thresholds`), averaged over AUs per test participant (paper §4.3).", "",
           "## What was run", "", _md(["", ""], prov), ""]
    for key in ("profile", "data_version", "git_commit"):
        if len(tables.distinct(key)) > 1:
            out += [f"> **Warning:** the runs come from {len(tables.distinct(key))} different "
                    f"`{key}` values and are pooled; select one with the manifest or a filter.",
                    ""]
    out += ["## Table 5: paper vs ours", "", table5_markdown(a.table5, a.correction),
            "## How far above trivial", "", references_markdown(a.references),
            "## Per-AU F1", "", per_au_f1_markdown(a.per_au_f1),
            "## Findings", "", *[p + "\n" for p in findings_text(a)],
            "## Figures", ""]
    n_methods = len(a.methods)
    captions = {"table5_bars.png": (f"Independent and dependent models of each of the {n_methods} "
                                    "normalization methods per split (paper values as "
                                    "diamonds)."),
                "fig4_per_au.png": "Paper Fig. 4: person-independent models per AU.",
                "fig5_gender.png": "Paper Fig. 5: gender train → test combinations.",
                "fig6_skin.png": "Paper Fig. 6: skin-type train → test combinations.",
                "fig7_dataset.png": "Paper Fig. 7: dataset train → test combinations."}
    for f in figures:
        name = f.rsplit("/", 1)[-1]
        out += [f"![{captions.get(name, name)}]({f})", "", f"*{captions.get(name, name)}*", ""]
    out += ["## All tests", "", tests_markdown(a.tests),
            "## Method notes", "",
            f"- **The paper's test** is the {PAPER_TEST}, significant at p < 0.05. It is the "
            "`p` column; findings use its corrected value (`p corrected`).",
            "- **Beyond the paper**: Welch's test (unequal variances), Cohen's d (pooled SD) and "
            "Hedges' g (exact small-sample correction), CIs of means and differences, the "
            f"{corr} correction across the paper's {family} tests (each baseline's tests form a "
            "family of their own), and Student's test on participant "
            "means (each unique participant once) as a check against pseudo-replication.",
            "- **Participant observation** = one (run, participant) pair. A participant tested in "
            "several runs (repetitions, or several models of a condition) counts once per run, as "
            "in the paper; the observations are therefore not independent and the paper's "
            "p-values are optimistic. Compare with `p (participant means)`.",
            "- Findings (c) and (d) are *absence of a significant drop*, not evidence of "
            "equivalence; with few observations they hold easily.",
            "- The paper reports no p-value for (c) on the gender and dataset splits; our verdict "
            "there has no published counterpart."]
    if any(m in BASELINES for m in a.methods):
        out += ["- **Person-calibration baselines** (`person_mean`, `person_median`; not in "
                "the paper): each person's mean or median frame, taken over that person's "
                "unlabelled frames, is replaced by the template's, at the autoencoder's "
                "resolution, then resized as DeepFN's output is. Each is tested against original "
                "data with the tests of findings (b)-(d) and against DeepFN; its tests form a "
                "corrected family of their own, so the paper's p-values do not change."]
    notes = list(tables.notes) + [f"{r['split']} / {r['test']}: {r['note']}"
                                  for _, r in a.tests.iterrows() if r["note"]]
    if notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(out) + "\n"
