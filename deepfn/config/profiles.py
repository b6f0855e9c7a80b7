"""The three profiles: ``smoke`` (CI), ``default`` (``make run`` on 2 CPU cores), ``paper``.

``params.yaml`` selects one with ``profile:``; a key set to ``null`` there takes the profile's
value, any other value overrides it (``dvc exp run -S normalize.iterations=2000``).  Keys a
profile doesn't name fall back to the defaults in :mod:`deepfn.config.settings`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "PROFILE_NAMES", "SMOKE_ROSTER"]

# The roster lives in params.yaml (dvc.yaml's foreach reads it; DVC cannot pick a list by
# profile), so a smoke *run* is the smoke profile plus this roster: 5 F + 5 M BP4D-like subjects
# (5 lighter I-II, 5 darker V-VI) and 4 DISFA-like, so every group split keeps the smoke
# protocol's 2 train + 1 val + >= 1 test subjects per group whichever BP4D-like subject becomes
# the template.  `make smoke` and the end-to-end test run it: 22 DVC stages.
SMOKE_ROSTER: tuple[str, ...] = ("F001", "F003", "F004", "F005", "F010",
                                 "M002", "M003", "M004", "M005", "M010",
                                 "SN001", "SN002", "SN003", "SN004")

# The CPU profiles' normalizer recipe (research/probe_normalizer_recipe.py, docs/normalizer.md
# "Recipe probe"): decoders on their person's mean face, the encoder on each frame minus its
# person's mean frame, He init, Adam 1e-3 / (0.9, 0.99), no random affine (the random warp
# stays): the template autoencoder then reproduces the template's expressions within a few
# thousand iterations.  The paper profile keeps the paper's values.
_CPU_RECIPE: dict[str, Any] = {"lr": 1.0e-3, "beta1": 0.9, "beta2": 0.99, "mean_face": True,
                               "center_input": True, "finetune": "decoder_subject",
                               "init": "kaiming", "rotation": 0.0, "scale": 0.0,
                               "translation": 0.0}

# The CPU profiles' classifier protocol (research/README.md "AU detectability", docs/protocol.md):
# per-AU thresholds chosen on the validation part and mirrored training frames lift the
# person-independent test F1 from 0.30 to 0.37 on the default roster, at no training cost;
# cross-person models reading their train / validation subjects whole (as the paper) to 0.39.
_CPU_CLASSIFIER: dict[str, Any] = {"thresholds": "validation", "flip": True,
                                   "subject_frames": "whole"}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Tiny images, few steps; tests use it with SMOKE_ROSTER (`make smoke`).  Nearly all of its
    # time is the ~4 s start-up (torch, MLflow) of each stage process: one per subject.
    "smoke": {
        "synthesize": {"frames_per_sequence": 6},
        "preprocess": {"ae_size": 32, "clf_size": 32},
        "pretrain": {"iterations": 40},
        "normalize": {"width": 4, "latent": 32, "iterations": 10, "batch_size": 16,
                      "checkpoint_every": 5, "log_every": 5, **_CPU_RECIPE},
        "experiments": {"repetitions": 1, "epochs": 2, "batch_size": 32, "n_train": 2,
                        "n_val": 1, "lr": 1.0e-3, **_CPU_CLASSIFIER},
        "tune": {"n_trials": 3},
    },
    # `make run` on a 2-core CPU machine: the whole pipeline in <= 15 minutes.
    "default": {
        "synthesize": {"frames_per_sequence": 30},
        "preprocess": {"ae_size": 64, "clf_size": 64},
        "pretrain": {"iterations": 10_000},
        # 20 iterations: with ``finetune: decoder_subject`` only D^x trains, and transfer's
        # output D^y(E(x - mean_x)) does not depend on it (E, D^y are the pretrained template
        # autoencoder's); the per-subject stage fixes the person's mean frame and records D^x.
        # (10,000 pretrain iterations stay: at 6,000 the template carried 4 AUs instead of 6.)
        "normalize": {"width": 16, "latent": 256, "iterations": 20, "batch_size": 32,
                      "checkpoint_every": 10, "log_every": 5, **_CPU_RECIPE},
        # 5 epochs over 240 frames a subject ~ the Adam steps of 8 over its 144 train-part ones.
        "experiments": {"repetitions": 4, "epochs": 5, "batch_size": 32, "n_train": 4,
                        "n_val": 2, "lr": 3.0e-3, "dependent_subjects": 3, **_CPU_CLASSIFIER},
        "tune": {"n_trials": 20},
    },
    # The paper's scale (Tables 1-3, §4.3): for a GPU.
    "paper": {
        "synthesize": {"frames_per_sequence": 120},
        "preprocess": {"ae_size": 128, "clf_size": 64},
        "pretrain": {"iterations": 0},
        "normalize": {"width": 128, "latent": 1024, "iterations": 50_000, "batch_size": 64,
                      "checkpoint_every": 1000, "log_every": 100, "lr": 5.0e-5,
                      "warm_start": False},
        "experiments": {"repetitions": 20, "epochs": 50, "batch_size": 64, "n_train": 4,
                        "n_val": 2, "lr": 5.0e-5, "equal_steps": False, "subject_frames": "whole",
                        "thresholds": "fixed",
                        "flip": False, "class_balance": False, "dependent_subjects": 0},
        "tune": {"n_trials": 100},
    },
}

PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
