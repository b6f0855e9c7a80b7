"""The three profiles: ``smoke`` (CI), ``default`` (``make run`` on 2 CPU cores), ``paper``.

``params.yaml`` selects one with ``profile:``; a key set to ``null`` there takes the profile's
value, any other value overrides it (``dvc exp run -S normalize.iterations=2000``).  Keys a
profile doesn't name fall back to the defaults in :mod:`deepfn.config.settings`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROFILES", "PROFILE_NAMES"]

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # Tiny images, few steps; tests use it.  Whole pipeline ~3 min for 30 subjects, nearly all
    # of it the ~5 s start-up (torch, MLflow) of each of the 38 stage processes.
    "smoke": {
        "synthesize": {"frames_per_sequence": 6},
        "preprocess": {"ae_size": 32, "clf_size": 32},
        "pretrain": {"iterations": 40},
        "normalize": {"width": 4, "latent": 32, "iterations": 10, "batch_size": 16,
                      "checkpoint_every": 5, "log_every": 5, "lr": 1.0e-3},
        "experiments": {"repetitions": 1, "epochs": 2, "batch_size": 32, "n_train": 2,
                        "n_val": 1, "lr": 1.0e-3},
        "tune": {"n_trials": 3},
    },
    # `make run` on a 2-core CPU machine: the whole pipeline in <= 15 minutes.
    "default": {
        "synthesize": {"frames_per_sequence": 30},
        "preprocess": {"ae_size": 64, "clf_size": 64},
        "pretrain": {"iterations": 800},
        "normalize": {"width": 16, "latent": 256, "iterations": 150, "batch_size": 32,
                      "checkpoint_every": 50, "log_every": 25, "lr": 5.0e-4},
        "experiments": {"repetitions": 3, "epochs": 15, "batch_size": 32, "n_train": 4,
                        "n_val": 2, "lr": 3.0e-3},
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
                        "n_val": 2, "lr": 5.0e-5, "equal_steps": False},
        "tune": {"n_trials": 100},
    },
}

PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
