"""Hyperparameter studies with Optuna for the classifier and the normalizer (docs/tuning.md).

    from deepfn.tuning import tune, TuneData
    data = TuneData(original=Path("data/preprocessed/clf"),
                    template=Path("data/template/template.json"))
    summary = tune(settings, target="classifier", data=data, n_trials=20)

Modules: :mod:`~deepfn.tuning.space` (search spaces -> ``params.yaml`` keys),
:mod:`~deepfn.tuning.study` (storages, resumable multi-worker loop),
:mod:`~deepfn.tuning.objectives` (validation-only objectives),
:mod:`~deepfn.tuning.report` (MLflow runs, plots, best-params export),
:mod:`~deepfn.tuning.stage` (:func:`tune` as named steps -- its workers in this process or
as Ray tasks -- and the ``tune`` stage :func:`run_tune`).
"""

from __future__ import annotations

from deepfn.tuning.objectives import TuneData
from deepfn.tuning.space import PARAM_KEYS, TARGETS
from deepfn.tuning.stage import default_study_name, run_tune, tune

__all__ = ["TuneData", "tune", "run_tune", "default_study_name", "TARGETS", "PARAM_KEYS"]
