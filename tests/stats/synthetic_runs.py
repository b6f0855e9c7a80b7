"""A fake ``deepfn-au`` store that follows the experiments stage's logging contract.

Test scaffolding, not part of the package.  For the stats tests, the pagination benchmark and
trying the report without training anything (from the repository root)::

    python -m tests.stats.synthetic_runs --uri sqlite:////tmp/fake/mlflow.db \\
        --manifest /tmp/fake/experiments.json --repetitions 20
    MLFLOW_TRACKING_URI=sqlite:////tmp/fake/mlflow.db \\
        python pipelines/stats.py --manifest /tmp/fake/experiments.json --out /tmp/fake/reports

Scores are drawn around the paper's Table 5 means (``gap_scale=0`` makes all four conditions of a
split equal: the negative control).  One run is what the experiments stage logs for one trained
model x test group: the tags of :data:`deepfn.stats.runs.RUN_TAGS`, ``participant/<s>/score``
(+ ``/f1``, ``/accuracy``), ``test/AUxx/...``, ``test/score`` and per-epoch ``train_loss`` /
``val_f1``; parent runs (``kind=condition``) hold no scores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from deepfn.data.corpus import AUS, DISFA_AUS
from deepfn.tracking import EXPERIMENT_AU, RunWriter, Store, run_key
from deepfn.utils.io import write_json

__all__ = ["AU_NAMES", "DISFA_AU_NAMES", "log_model_run", "write_synthetic_store", "main"]

AU_NAMES: tuple[str, ...] = tuple(f"AU{a:02d}" for a in AUS)
DISFA_AU_NAMES: tuple[str, ...] = tuple(f"AU{a:02d}" for a in DISFA_AUS)

# The paper's Table 5 (fractions): independent, dependent, DeepFN-independent, DeepFN-dependent.
_PAPER = {"person": (0.550, 0.603, 0.596, 0.614), "gender": (0.526, 0.550, 0.577, 0.602),
          "skin": (0.499, 0.552, 0.574, 0.587), "dataset": (0.446, 0.540, 0.511, 0.615)}
# Train/test groups per split; the person split uses "others" / "self".
_SPLIT_GROUPS = {"gender": ("F", "M"), "skin": ("lighter", "darker"), "dataset": ("bp4d", "disfa")}
# A per-test-group offset (the paper: testing on women / darker skin scored higher).
_TEST_OFFSET = {"F": 0.015, "M": -0.015, "darker": 0.015, "lighter": -0.015, "bp4d": 0.0,
                "disfa": 0.0}


# The person-calibration baselines: this fraction of DeepFN's gain over original data.
_BASELINE_SHARE = {"person_mean": 0.5, "person_median": 0.3}


def _means(split: str, norm: str) -> dict[str, float]:
    """Independent / dependent mean (fractions) of one normalization on one split."""
    indep, dep, dfn_indep, dfn_dep = _PAPER[split]
    if norm == "original":
        return {"independent": indep, "dependent": dep}
    if norm == "deepfn":
        return {"independent": dfn_indep, "dependent": dfn_dep}
    k = _BASELINE_SHARE[norm]
    return {"independent": indep + k * (dfn_indep - indep), "dependent": dep + k * (dfn_dep - dep)}


# Reference classifiers (F1, accuracy) at a typical AU prevalence of 0.25.
_REFERENCES = {"absent": (0.0, 0.75), "random": (0.25, 0.625), "majority": (0.0, 0.75)}


def _metrics(prefix: str, score: float, spread: float) -> dict[str, float]:
    """score = mean(F1, accuracy): F1 below it, accuracy above it."""
    return {f"{prefix}/score": score, f"{prefix}/f1": score - spread,
            f"{prefix}/accuracy": score + spread}


def log_model_run(c, experiment: str, *, tags: Mapping[str, str],
                  participants: Mapping[str, float], aus: Mapping[str, float] | None = None,
                  epochs: int = 0, status: str = "FINISHED") -> str:
    """Log one model run (scores are fractions) the way the experiments stage does; its id."""
    now = int(time.time() * 1000)
    run = c.create_run(experiment, tags={"kind": "model", "stage": "experiments", **tags})
    values: dict[str, float] = {}
    for subject, score in participants.items():
        values.update(_metrics(f"participant/{subject}", float(score), 0.1))
    for au, score in (aus or {}).items():
        values.update(_metrics(f"test/{au}", float(score), 0.1))
    if participants:
        values.update(_metrics("test", float(np.mean(list(participants.values()))), 0.1))
    for ref, (f1, acc) in _REFERENCES.items():  # what the stage logs (deepfn.au.metrics)
        values.update({f"reference/{ref}/f1": f1, f"reference/{ref}/accuracy": acc,
                       f"reference/{ref}/score": (f1 + acc) / 2})
    values.update({"best_epoch": float(max(epochs - 1, 0)), "n_aus_without_positives": 0.0})
    writer = RunWriter(c, run.info.run_id)
    writer.log_metrics(values, timestamp=now)
    for e in range(epochs):
        writer.log_metrics({"train_loss": 1.0 / (e + 1), "val_f1": 1.0 / (e + 1)}, step=e,
                           timestamp=now)
    writer.terminate(status)
    return run.info.run_id


def _roster() -> dict[str, dict[str, str]]:
    """30 subjects: F/M (BP4D) and SN (DISFA), with gender and a skin group (or none)."""
    out: dict[str, dict[str, str]] = {}
    for i in range(1, 11):
        for prefix, dataset in (("F", "bp4d"), ("M", "bp4d"), ("SN", "disfa")):
            gender = prefix if prefix != "SN" else ("F" if i % 2 else "M")
            skin = "lighter" if i <= 4 else ("darker" if i >= 6 else "")
            out[f"{prefix}{i:03d}"] = {"gender": gender, "skin": skin, "dataset": dataset}
    return out


def _pool(roster: Mapping[str, Mapping[str, str]], split: str, group: str) -> list[str]:
    if split == "person":  # "others" / "self": all BP4D subjects
        return [s for s, m in roster.items() if m["dataset"] == "bp4d"]
    key = {"gender": "gender", "skin": "skin", "dataset": "dataset"}[split]
    pool = [s for s, m in roster.items() if m[key] == group]
    return pool if split == "dataset" else [s for s in pool if roster[s]["dataset"] == "bp4d"]


def _combos(split: str) -> list[tuple[str, str, str]]:
    """(evaluation, train_group, test_group) of one repetition of one split."""
    if split == "person":
        return [("independent", "others", "others"), ("dependent", "self", "self")]
    a, b = _SPLIT_GROUPS[split]
    return [("dependent" if tr == te else "independent", tr, te)
            for tr, te in ((a, a), (b, b), (a, b), (b, a))]


def write_synthetic_store(uri: str, *, repetitions: int = 3, seed: int = 0,
                          gap_scale: float = 1.0, epochs: int = 0,
                          splits: Sequence[str] = tuple(_PAPER),
                          normalizations: Sequence[str] = ("original", "deepfn"),
                          manifest: str | Path | None = None) -> list[dict[str, object]]:
    """Fill experiment ``deepfn-au`` at ``uri``; return the manifest entries (+ write them).

    ``repetitions`` x normalizations x 14 child runs (2 person, 4 per other split), plus one
    parent run per split x normalization x repetition.  The baselines (``person_mean``,
    ``person_median``) score a share of DeepFN's gain over original data.
    """
    rng = np.random.default_rng(seed)
    store = Store(uri)
    c, exp = store.client, store.experiment_id(EXPERIMENT_AU)
    roster = _roster()
    person_effect = {s: rng.normal(0.0, 0.03) for s in roster}
    au_offset = {au: rng.normal(0.0, 0.05) for au in AU_NAMES}
    entries: list[dict[str, object]] = []
    common = {"profile": "synthetic", "data_version": "synthetic", "git_commit": "synthetic"}
    for split in splits:
        indep = _PAPER[split][0]
        for norm in normalizations:
            means = {k: indep + gap_scale * (v - indep) for k, v in _means(split, norm).items()}
            for rep in range(repetitions):
                split_seed = seed * 100_000 + rep
                parent = c.create_run(exp, tags={"kind": "condition", "group": split,
                                                 "normalization": norm, "repetition": str(rep),
                                                 **common}).info.run_id
                for evaluation, train_group, test_group in _combos(split):
                    order = [str(s) for s in rng.permutation(_pool(roster, split, train_group))]
                    train, val = order[:4], order[4:6]
                    if evaluation == "dependent" and split == "person":
                        test = order[:6]  # "self": held-out frames of the people trained on
                    else:
                        test = [str(s) for s in rng.permutation(_pool(roster, split, test_group))
                                if s not in train + val]
                    base = means[evaluation] + gap_scale * _TEST_OFFSET.get(test_group, 0.0)
                    scores = {s: float(np.clip(base + gap_scale * person_effect[s]
                                               + rng.normal(0.0, 0.03), 0.0, 1.0)) for s in test}
                    au_names = DISFA_AU_NAMES if split == "dataset" else AU_NAMES
                    gain = 0.0 if norm == "original" else 0.02
                    aus = {au: float(np.clip(base + au_offset[au] + gain * (i % 4)
                                             + rng.normal(0.0, 0.02), 0.0, 1.0))
                           for i, au in enumerate(au_names)}
                    key = run_key(split=split, norm=norm, rep=rep, train=train_group,
                                  test=test_group, seed=seed)
                    tags = {"group": split, "evaluation": evaluation, "normalization": norm,
                            "train_group": train_group, "test_group": test_group,
                            "repetition": str(rep), "split_seed": str(split_seed),
                            "train_subjects": ",".join(train), "val_subjects": ",".join(val),
                            "test_subjects": ",".join(test), "run_key": key, "model_key": key,
                            "mlflow.parentRunId": parent, **common}
                    run_id = log_model_run(c, exp, tags=tags, participants=scores, aus=aus,
                                           epochs=epochs)
                    entries.append({"run_id": run_id, "run_key": key, "group": split,
                                    "evaluation": evaluation, "train_group": train_group,
                                    "test_group": test_group, "normalization": norm,
                                    "repetition": rep, "split_seed": split_seed})
                c.set_terminated(parent)
    if manifest is not None:
        write_json(manifest, {"experiment": EXPERIMENT_AU, "tracking_uri": uri,
                              "data_version": "synthetic", "runs": entries})
    return entries


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--uri", required=True, help="tracking URI, e.g. sqlite:////tmp/x/mlflow.db")
    p.add_argument("--manifest", help="write a results/experiments.json-style manifest here")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10, help="per-epoch history length")
    p.add_argument("--gap-scale", type=float, default=1.0, help="0 = negative control")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--normalizations", nargs="+", default=["original", "deepfn"],
                   help="methods to log runs for (original deepfn person_mean person_median)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    entries = write_synthetic_store(args.uri, repetitions=args.repetitions, seed=args.seed,
                                    gap_scale=args.gap_scale, epochs=args.epochs,
                                    normalizations=args.normalizations, manifest=args.manifest)
    print(f"logged {len(entries)} model runs in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
