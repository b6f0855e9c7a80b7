"""Search spaces: ``tune`` ranges of ``params.yaml`` -> Optuna suggestions -> ``params.yaml`` keys.

Each tuned name maps to exactly one dotted ``params.yaml`` key, so the best trial can be exported
as overrides (``experiments.lr: 0.00042``) and replayed with ``dvc exp run -S key=value``::

    classifier  lr (log)  beta1  batch_size (categorical)  epochs (int)  weight_decay (log)
    normalizer  lr (log)  warp_strength  iterations (int, log)  width (categorical)
                pretrain_iterations (categorical: 0 = no warm start, or the profile's count)
"""

from __future__ import annotations

from typing import Any

import optuna

from deepfn.config.settings import Settings, TuneSettings

__all__ = ["TARGETS", "PARAM_KEYS", "suggest", "suggest_classifier",
           "suggest_normalizer", "to_overrides", "warm_start_overrides", "pretrain_choices"]

TARGETS: tuple[str, ...] = ("classifier", "normalizer")

#: tuned name -> ``params.yaml`` key, per target
PARAM_KEYS: dict[str, dict[str, str]] = {
    "classifier": {
        "lr": "experiments.lr",
        "beta1": "experiments.beta1",
        "batch_size": "experiments.batch_size",
        "epochs": "experiments.epochs",
        "weight_decay": "experiments.weight_decay",
    },
    "normalizer": {
        "lr": "normalize.lr",
        "warp_strength": "normalize.warp_strength",
        "iterations": "normalize.iterations",
        "width": "normalize.width",
        "pretrain_iterations": "pretrain.iterations",
    },
}


def suggest_classifier(trial: optuna.Trial, tune: TuneSettings) -> dict[str, Any]:
    """LeNet-5 training hyperparameters (``experiments.*``)."""
    return {
        "lr": trial.suggest_float("lr", *tune.lr, log=True),
        "beta1": trial.suggest_float("beta1", *tune.beta1),
        "batch_size": int(trial.suggest_categorical("batch_size", list(tune.batch_size))),
        "epochs": trial.suggest_int("epochs", *tune.epochs),
        "weight_decay": trial.suggest_float("weight_decay", *tune.weight_decay, log=True),
    }


def pretrain_choices(settings: Settings) -> list[int]:
    """Warm start on/off: ``[0, pretrain.iterations]`` (just ``[0]`` when the profile has none).

    Pretraining is a fixed cost shared by all subjects, so a two-point choice (off, or the
    profile's budget) answers the useful question -- does the warm start pay -- without a range.
    """
    n = settings.pretrain.iterations
    return [0, n] if n > 0 else [0]


def suggest_normalizer(trial: optuna.Trial, tune: TuneSettings,
                       settings: Settings | None = None) -> dict[str, Any]:
    """Autoencoder hyperparameters (``normalize.*``, ``pretrain.iterations``)."""
    low, high = (int(v) for v in tune.iterations)
    out: dict[str, Any] = {
        "lr": trial.suggest_float("lr", *tune.lr, log=True),
        "warp_strength": trial.suggest_float("warp_strength", *tune.warp_strength),
        "iterations": trial.suggest_int("iterations", low, high, log=low > 0),
        "width": int(trial.suggest_categorical("width", list(tune.width))),
    }
    choices = pretrain_choices(settings) if settings is not None else [0]
    out["pretrain_iterations"] = int(trial.suggest_categorical("pretrain_iterations", choices))
    return out


def suggest(target: str, trial: optuna.Trial, settings: Settings) -> dict[str, Any]:
    if target == "classifier":
        return suggest_classifier(trial, settings.tune)
    if target == "normalizer":
        return suggest_normalizer(trial, settings.tune, settings)
    raise ValueError(f"unknown tuning target {target!r}; allowed: {', '.join(TARGETS)}")


def _clean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(f"{value:.6g}")  # 6 significant digits: readable, same model
    return value


def to_overrides(target: str, params: dict[str, Any]) -> dict[str, Any]:
    """Trial params -> ``{"experiments.lr": 0.00042, ...}`` (unknown names are an error).

    For the normalizer a warm start of 0 iterations also turns ``normalize.warm_start`` off and
    sets ``normalize.finetune: all`` (with nothing to start from, every layer must train).
    """
    keys = PARAM_KEYS[target]
    unknown = sorted(set(params) - set(keys))
    if unknown:
        raise ValueError(f"{target} study has parameter(s) {', '.join(unknown)} that map to no "
                         "params.yaml key; was the study created by another target?")
    out = {keys[name]: _clean(value) for name, value in sorted(params.items())}
    if target == "normalizer" and "pretrain_iterations" in params:
        out.update(warm_start_overrides(int(params["pretrain_iterations"])))
    return out


def warm_start_overrides(pretrain_iterations: int) -> dict[str, Any]:
    """The normalize keys a warm start of ``pretrain_iterations`` implies: ``warm_start`` off at
    0, and then ``finetune: all`` (with nothing to start from, every layer must train)."""
    warm = pretrain_iterations > 0
    return {"normalize.warm_start": warm, **({} if warm else {"normalize.finetune": "all"})}
