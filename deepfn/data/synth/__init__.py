"""Synthetic FACS face corpus: identities, AU episodes, nuisance and a vectorized renderer."""

from deepfn.data.synth.generate import synthesize_corpus
from deepfn.data.synth.params import (
    IDENTITY_PARAMS,
    NUISANCE_PARAMS,
    identity_batch,
    nuisance_batch,
)
from deepfn.data.synth.preview import write_preview, write_strip
from deepfn.data.synth.render import render_faces
from deepfn.data.synth.roster import roster_metadata

__all__ = [
    "roster_metadata", "synthesize_corpus", "render_faces", "write_preview", "write_strip",
    "IDENTITY_PARAMS", "NUISANCE_PARAMS", "identity_batch", "nuisance_batch",
]
