"""Negative control of the person gap: the same experiment with and without identity.

    .venv/bin/python research/negative_control.py [--repetitions 5] [--profile PROFILE] \\
        [--epochs N] [--set KEY=VALUE ...] [--work DIR] \\
        [--out research/results/negative_control.json]

For each ``synthesize.identity_strength`` in (1, 0) and each protocol it renders the roster of
``params.yaml``, preprocesses it, picks the template, runs only the person split on original images
(``experiments.groups: [person]``, ``normalizations: [original]``) into its own MLflow sqlite
store, pulls the runs back through the stats stage's fetch and runs the stats stage's tests.
Recorded per strength: the dependent and independent cell means (%), the gap, Student's and
Welch's p (the paper's test is Student's), Holm over the person family, Hedges' g and the number
of participant observations.  With ``identity_strength: 0`` everyone shares one face, so the
gap should vanish (docs/stats.md, "Negative control").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from deepfn.errors import DeepFNError
from deepfn.utils.io import write_json

# protocol -> its experiments overrides (matched: one subject's train part for every model)
PROTOCOLS: dict[str, dict[str, object]] = {
    "paper": {"experiments.match_frames": False},
    "matched": {"experiments.match_frames": True, "experiments.subject_frames": "parts"},
}


def run_one(strength: float, protocol: str, work: Path, args: argparse.Namespace) -> dict:
    from deepfn.au.experiments import run_experiments
    from deepfn.config import load_settings
    from deepfn.data.preprocess import preprocess_corpus
    from deepfn.data.synth import synthesize_corpus
    from deepfn.data.template import select_template
    from deepfn.stats.runs import fetch_runs
    from deepfn.stats.tables import analyse

    overrides = {"synthesize.identity_strength": strength,
                 "experiments.groups": ["person"], "experiments.normalizations": ["original"],
                 "experiments.repetitions": args.repetitions, **PROTOCOLS[protocol]}
    if args.profile:
        overrides["profile"] = args.profile
    if args.epochs:
        overrides["experiments.epochs"] = args.epochs
    for item in args.set:  # --set experiments.thresholds=fixed
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    s = load_settings(args.params, overrides)
    t0 = time.perf_counter()
    syn = s.synthesize
    if not (work / "template" / "template.json").is_file():  # one corpus per strength
        synthesize_corpus(work / "raw", syn.subjects, seed=syn.seed, identity_strength=strength,
                          frames_per_sequence=syn.frames_per_sequence, image_size=syn.image_size)
        preprocess_corpus(work / "raw", work / "pre", s.preprocess)
        select_template(work / "pre" / "ae", work / "template", s.template)
    uri = f"sqlite:///{work / f'mlflow-{protocol}.db'}"
    clf, manifest = work / "pre" / "clf", work / f"manifest-{protocol}.json"
    run_experiments(s, clf, clf, work / "template" / "template.json", manifest, uri=uri)
    tables = fetch_runs(uri, manifest)
    a = analyse(tables.participants, tables.per_au, alpha=s.stats.alpha,
                correction=s.stats.correction)
    cells = a.cells.set_index(["split", "condition"])
    gap = a.tests[(a.tests["split"] == "person") & (a.tests["test"] == "gap")].iloc[0]
    return {
        "identity_strength": strength, "protocol": protocol,
        "dependent": round(float(cells.loc[("person", "dependent"), "mean"]), 2),  # %
        "independent": round(float(cells.loc[("person", "independent"), "mean"]), 2),
        "gap": round(float(gap["diff"]), 2),
        "p_student": float(gap["p_student"]), "p_welch": float(gap["p_welch"]),
        "p_holm": float(gap["p_corrected"]), "family_size": int(gap["family_size"]),
        "hedges_g": round(float(gap["hedges_g"]), 3),
        "n_dependent": int(gap["n_a"]), "n_independent": int(gap["n_b"]),
        "p_participant_level": float(gap["p_participant_level"]),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _body(args: argparse.Namespace) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepfn-negctl-") as tmp:
        root = Path(args.work or tmp)
        protocols = list(PROTOCOLS) if args.protocol == "both" else [args.protocol]
        for strength in (1.0, 0.0):
            for protocol in protocols:
                row = run_one(strength, protocol, root / f"identity_{strength:g}", args)
                print(json.dumps(row), flush=True)
                rows.append(row)
    write_json(Path(args.out), {
        "benchmark": "negative control: person gap with and without identity",
        "config": {"profile": args.profile or "params file", "repetitions": args.repetitions,
                   "epochs": args.epochs or "profile", "groups": ["person"],
                   "protocols": PROTOCOLS, "set": args.set,
                   "normalizations": ["original"]},
        "results": rows})
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--profile", default=None, help="default: the params file's profile")
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--epochs", type=int, default=0, help="0: the profile's value")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both",
                   help="paper: dependent models on one subject's frames, independent on "
                        "n_train subjects' (equal steps); matched: every model on one subject's "
                        "worth of frames (experiments.match_frames)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a params override for every run, e.g. experiments.thresholds=fixed "
                        "(repeatable)")
    p.add_argument("--work", default=None, help="scratch directory (default: a temp dir); "
                   "rerunning with the same one resumes (finished runs are skipped)")
    p.add_argument("--out", default="research/results/negative_control.json")
    args = p.parse_args(argv)
    try:
        _body(args)
    except DeepFNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
