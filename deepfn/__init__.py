"""deepfn: DeepFN face normalization for generalizable AU recognition (DVC + MLflow + Optuna).

Subpackages by concern: ``config`` (validated params), ``data`` (corpus format, synthetic renderer,
importers, preprocessing, template), ``normalizer`` (the per-subject autoencoders), ``au``
(LeNet-5 experiments), ``stats`` (tests and report), ``tracking`` (MLflow conventions),
``tuning`` (Optuna studies).  Importing the package does no work.
"""

__version__ = "0.1.0"
