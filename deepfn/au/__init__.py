"""AU recognition experiments (paper §3.3, §4): LeNet-5, metrics, protocol, trainer, stage.

Modules: :mod:`~deepfn.au.lenet` (Table 3 network, masked loss), :mod:`~deepfn.au.metrics`
(F1/accuracy/score), :mod:`~deepfn.au.protocol` (pools, splits, frame parts, model plans),
:mod:`~deepfn.au.trainer` (one job), :mod:`~deepfn.au.strategies` (sequential / process pool),
:mod:`~deepfn.au.ray_jobs` (the jobs as Ray tasks), :mod:`~deepfn.au.runs` (MLflow logging),
:mod:`~deepfn.au.experiments` (the stage).
Importing the package loads nothing heavy; import the submodules.
"""

__all__: list[str] = []
