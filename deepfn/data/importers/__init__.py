"""Importers for licensed BP4D and DISFA copies; they write the same corpus format as ``synth``.

:func:`import_corpus` builds the whole corpus in a temporary sibling of ``out_dir`` and renames it
into place only when every subject imported cleanly, so a failed import leaves no partial
``out_dir`` (and an existing one untouched).  See ``docs/importers.md`` for the layouts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepfn.data.corpus import (
    SUBJECT_COLUMNS,
    read_subjects,
    write_manifest,
    write_subject,
    write_subjects,
)
from deepfn.data.importers.bp4d import import_bp4d
from deepfn.data.importers.common import (
    METADATA_COLUMNS,
    ImportReport,
    SubjectReport,
    check_metadata,
    expressivity,
    read_metadata,
)
from deepfn.data.importers.disfa import import_disfa
from deepfn.data.importers.faces import DETECTORS, FaceCropper
from deepfn.errors import DeepFNError
from deepfn.utils.io import atomic_dir, write_json

__all__ = [
    "import_corpus", "import_bp4d", "import_disfa", "FaceCropper", "DETECTORS", "ImportReport",
    "SubjectReport", "read_metadata", "check_metadata", "METADATA_COLUMNS", "REPORT_NAME",
]

REPORT_NAME = "import_report.json"


def import_corpus(out_dir: Path, *, bp4d_root: Path | None, disfa_root: Path | None,
                  metadata_csv: Path, image_size: int = 128, detector: str = "haar",
                  progress: bool = True) -> ImportReport:
    """Import BP4D and/or DISFA into one corpus at ``out_dir`` (atomic; source ``licensed``).

    Writes ``<subject>.npz`` per subject, ``subjects.csv`` (dataset set here, gender/skin_type
    from ``metadata_csv``, expressivity = mean per-AU occurrence rate over coded labels),
    ``manifest.json`` and ``import_report.json``.  Returns the report.
    """
    if bp4d_root is None and disfa_root is None:
        raise DeepFNError("nothing to import: set synthesize.bp4d_root and/or "
                          "synthesize.disfa_root (or run 'deepfn import bp4d|disfa ROOT')")
    out_dir = Path(out_dir)
    metadata = read_metadata(metadata_csv)
    genders = {str(k): str(v) for k, v in metadata["gender"].items()}
    skin_types = {str(k): int(v) for k, v in metadata["skin_type"].items()}
    cropper = FaceCropper(detector, image_size)
    report = ImportReport(detector=detector, image_size=int(image_size))
    # Plan (and so validate layout, metadata and label files of) both datasets before the
    # expensive image work starts.
    sources = []
    if bp4d_root is not None:
        report.roots["bp4d"] = str(bp4d_root)
        sources.append(("bp4d", import_bp4d(Path(bp4d_root), metadata, image_size=image_size,
                                            detector=cropper, progress=progress, report=report)))
    if disfa_root is not None:
        report.roots["disfa"] = str(disfa_root)
        sources.append(("disfa", import_disfa(Path(disfa_root), metadata, image_size=image_size,
                                              detector=cropper, progress=progress,
                                              report=report)))
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    with atomic_dir(out_dir) as tmp:
        for dataset, subjects in sources:
            for data in subjects:
                if data.subject in seen:
                    raise DeepFNError(f"{metadata_csv}: subject id {data.subject} occurs in both "
                                      "BP4D and DISFA; the ids must be unique")
                seen.add(data.subject)
                expr = expressivity(data.occurrence)
                if expr is None:
                    raise DeepFNError(
                        f"{report.roots[dataset]}: subject {data.subject} has no coded AU label "
                        "in any kept frame; check its label files or remove the subject")
                report.subjects[data.subject].expressivity = expr
                write_subject(tmp, data)
                rows.append({"subject": data.subject, "dataset": dataset,
                             "gender": genders[data.subject],
                             "skin_type": skin_types[data.subject],
                             "expressivity": expr})
        table = pd.DataFrame(rows, columns=list(SUBJECT_COLUMNS))
        write_subjects(tmp / "subjects.csv", table)
        read_subjects(tmp / "subjects.csv")  # the table downstream stages read must validate
        write_manifest(tmp, source="licensed", image_size=int(image_size),
                       subjects=list(table["subject"]),
                       extra={"import": {"datasets": [d for d, _ in sources],
                                         "detector": detector}})
        write_json(tmp / REPORT_NAME, report.to_dict())
    return report
