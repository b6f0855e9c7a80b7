"""Reference point for the normalizer diagnostics: a trivial "mean-shift" normalizer.

    .venv/bin/python research/baseline_mean_shift.py [--data data/preprocessed/ae] \\
        [--template data/template] [--metrics reports/normalization/metrics.json] \\
        [--out research/results/mean_shift.json]

Every frame x of subject s becomes ``mean(template) + (x - mean(s))`` (clipped to [0, 255]): no
learning at all, just each person's average face swapped for the template's.  The math is the
library's ``person_mean`` method (:func:`deepfn.normalizer.methods.person_shift`), which the
pipeline now runs beside DeepFN (``experiments.normalizations``); this probe answered, before
that, whether it was worth it, and stays to reproduce that answer at the AE resolution.  The same
identity and expression probes as the transfer stage (``deepfn.normalizer.diagnostics``) are
run on it, and set beside the DeepFN numbers of ``--metrics`` when that file exists, so a
reader can see how much of what DeepFN does a per-person mean already does (and where DeepFN
falls short of it).  A linear probe is blind to a constant shift, so the within-subject
expression r of this baseline equals the originals' up to clipping: it is an upper bound for
that metric, not a method to beat on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepfn.data.corpus import read_subject, read_subjects
from deepfn.normalizer.diagnostics import ProbeSet, summarize
from deepfn.normalizer.jobs import read_template
from deepfn.normalizer.methods import person_shift
from deepfn.utils.io import write_json


def _short(r: dict) -> dict:
    return {"identity_accuracy": r["identity_accuracy"],
            "expression_r": {k: r["expression_r"][k] for k in ("mean_before", "mean_after")},
            "expression_r_cross_subject": {k: r["expression_r_cross_subject"][k]
                                           for k in ("mean_before", "mean_after")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/preprocessed/ae")
    p.add_argument("--template", default="data/template")
    p.add_argument("--metrics", default="reports/normalization/metrics.json")
    p.add_argument("--out", default="research/results/mean_shift.json")
    a = p.parse_args(argv)
    template, _ = read_template(a.template)
    subjects = list(read_subjects(f"{a.data}/subjects.csv").index)
    probes = ProbeSet()
    for i, sid in enumerate(subjects):  # every subject, as the transfer stage does
        d = read_subject(a.data, sid)
        probes.add(i, d.images, person_shift(d.images, template.images, "mean"), d.intensity,
                   d.sequence)
    report = {"baseline": "mean shift: mean(template) + (x - mean(subject))",
              "data": a.data, "template_subject": template.subject, "subjects": len(subjects),
              "mean_shift": _short(summarize(probes, len(subjects)))}
    if Path(a.metrics).is_file():
        report["deepfn"] = _short(json.loads(Path(a.metrics).read_text()))
    write_json(a.out, report)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
