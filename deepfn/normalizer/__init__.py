"""DeepFN face normalization (paper §3.1): per-subject denoising autoencoders.

A shared encoder E and two decoders -- D^y (the template's appearance) and D^x (the subject's) --
are trained with Eq. 1 on randomly warped frames; Eq. 2, ``X^y = D^y(E(X))``, then maps every
frame of the subject onto the template's face.  Modules:

    model        the autoencoder of Tables 1-2 (``ArchConfig`` scales it)
    augment      random affine + coarse random warp in one resampling pass
    train        Eq. 1 training loop with exact resume
    checkpoint   model files and resumable work checkpoints (weights_only loads)
    preview      input | D^x(E(x)) | D^y(E(x)) preview grids
    jobs         the ``pretrain`` and ``normalize`` stages (MLflow logging)
    transfer     the ``transfer`` stage: Eq. 2 over the corpus -> data/normalized
    diagnostics  identity-leakage and expression probes, Fig.-2-style group averages

Importing the package imports torch but not mlflow or sklearn.
"""

from deepfn.normalizer.augment import AugmentParams, augment
from deepfn.normalizer.checkpoint import load_model, save_model
from deepfn.normalizer.model import ArchConfig, DeepFNAutoencoder
from deepfn.normalizer.train import NormalizerTrainConfig, deepfn_loss, fit_normalizer

__all__ = [
    "ArchConfig", "DeepFNAutoencoder", "AugmentParams", "augment", "NormalizerTrainConfig",
    "deepfn_loss", "fit_normalizer", "load_model", "save_model",
]
