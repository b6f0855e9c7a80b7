"""A real ``deepfn tune classifier`` process whose objective is a fast synthetic one.

    python tests/tuning/worker.py tune classifier --study S --n-trials 6 --storage J --params P

Everything but the objective is the real command (CLI, storage, worker loop, MLflow runs); the
objective suggests the classifier's parameters, then sleeps ``DEEPFN_TEST_STEP_S`` per step for
3 reported steps.  With ``DEEPFN_TEST_RENDEZVOUS=DIR`` the first trial of each process touches
``DIR/<pid>`` and waits until ``DEEPFN_TEST_PARTIES`` (2) processes did: every worker is then
inside a trial at the same time, so each one contributes (none can finish the study alone).
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import optuna

from deepfn.config.settings import Settings
from deepfn.tuning.objectives import Reporter
from deepfn.tuning.space import suggest_classifier


class FastObjective:
    """Deterministic in the parameters; ``steps`` intermediate reports (pruning works)."""

    def __init__(self, settings: Settings, step_s: float = 0.0, steps: int = 3,
                 rendezvous: Path | None = None, parties: int = 2) -> None:
        self.tune, self.step_s, self.steps = settings.tune, step_s, steps
        self.rendezvous, self.parties = rendezvous, parties

    def _meet(self) -> None:
        assert self.rendezvous is not None
        self.rendezvous.mkdir(parents=True, exist_ok=True)
        (self.rendezvous / str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while len(list(self.rendezvous.iterdir())) < self.parties:
            if time.monotonic() > deadline:
                raise RuntimeError("the other workers never started a trial")
            time.sleep(0.02)
        self.rendezvous = None

    def __call__(self, trial: optuna.Trial) -> float:
        if self.rendezvous is not None:
            self._meet()
        p = suggest_classifier(trial, self.tune)
        rep = Reporter(trial)
        rep.params(p)
        value = 0.0
        for step in range(self.steps):
            time.sleep(self.step_s)
            value = 1.0 - abs(math.log10(p["lr"]) + 3.5) / 10 - abs(p["beta1"] - 0.6) / 10
            value += 0.01 * step
            rep.report(step, value)
        return value

    def close(self) -> None:
        pass


def main() -> None:
    from deepfn.tuning import objectives

    step_s = float(os.environ.get("DEEPFN_TEST_STEP_S", "0.2"))
    meet = os.environ.get("DEEPFN_TEST_RENDEZVOUS")
    parties = int(os.environ.get("DEEPFN_TEST_PARTIES", "2"))

    def build(target: str, settings: Settings, data: object, splits: int = 2) -> FastObjective:
        return FastObjective(settings, step_s, rendezvous=Path(meet) if meet else None,
                             parties=parties)

    objectives.build_objective = build  # type: ignore[assignment]
    from deepfn.cli import app

    app(sys.argv[1:], prog_name="deepfn")


if __name__ == "__main__":
    main()
