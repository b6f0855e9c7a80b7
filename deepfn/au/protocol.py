"""The evaluation protocol (paper §4.1, §4.3): pools, subject splits, frame parts, model plans.

Pure functions of the subjects table, the template id and :class:`ExperimentsSettings` (no I/O,
no torch), so the splits are cheap to test and identical for every normalization.
See ``docs/protocol.md`` for the rules in prose.

* **pools**: ``person``/``gender``/``skin`` draw from BP4D-like subjects only (as the paper),
  ``dataset`` from both datasets; the template subject is never in any pool.
* **subjects**: per split and repetition ``r`` the split seed is ``hash(seed, split, r)``; each
  group of the split draws ``n_train`` train, ``n_val`` val and keeps the rest (``>= min_test``)
  for test.  In the ``person`` split every test subject also gets a person-dependent model, or
  ``dependent_subjects`` of them drawn per repetition (:func:`dependent_subjects`).
* **frames**: each recording segment (a BP4D task ``T1``..``T8``, or one eighth of any other
  sequence, e.g. a DISFA video) is ordered in time and cut into 8 contiguous blocks: blocks 1-5
  train, 6 validation, 7-8 test.  So every part holds a stretch of every task (and its AUs),
  and test frames never touch train frames.  Never random frames (neighbours would leak).
  Sequences named ``train`` / ``val`` / ``test`` are that part as a whole (explicit layouts).
  Which parts a model reads: :func:`model_parts` (``experiments.subject_frames``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepfn.config.settings import ExperimentsSettings
from deepfn.data.corpus import AUS, DISFA_AUS, skin_group
from deepfn.data.parts import N_BLOCKS, PARTS, TEST, TRAIN, VAL, frame_parts, segment_parts
from deepfn.errors import DeepFNError

__all__ = [
    "PARTS", "TRAIN", "VAL", "TEST", "N_BLOCKS", "segment_parts", "frame_parts", "split_aus",
    "group_pools", "check_pools", "split_seed", "GroupSplit", "Split", "draw_split", "Evaluation",
    "ModelPlan", "dependent_subjects", "plan_models", "ALL_PARTS", "model_parts",
    "cross_person_parts",
]

ALL_PARTS: tuple[int, ...] = (TRAIN, VAL, TEST)


def split_aus(group: str) -> tuple[int, ...]:
    """The AUs a split evaluates: the 5 shared DISFA AUs for ``dataset``, else all 12."""
    return DISFA_AUS if group == "dataset" else AUS


def group_pools(subjects: pd.DataFrame, group: str, template: str) -> dict[str, list[str]]:
    """The groups of one split and their (sorted) subject pools, template excluded."""
    df = subjects[subjects["subject"] != template]
    bp4d = df[df["dataset"] == "bp4d"]
    if group == "person":
        return {"others": sorted(bp4d["subject"])}
    if group == "gender":
        return {g: sorted(bp4d.loc[bp4d["gender"] == g, "subject"]) for g in ("F", "M")}
    if group == "skin":
        sg = bp4d["skin_type"].map(skin_group)
        return {g: sorted(bp4d.loc[sg == g, "subject"]) for g in ("lighter", "darker")}
    if group == "dataset":
        return {d: sorted(df.loc[df["dataset"] == d, "subject"]) for d in ("bp4d", "disfa")}
    raise ValueError(f"unknown group split {group!r}")


def check_pools(pools: Mapping[str, Sequence[str]], group: str, exp: ExperimentsSettings) -> None:
    """Every pool must hold ``n_train + n_val + min_test`` subjects (one line otherwise)."""
    need = exp.n_train + exp.n_val + exp.min_test
    for name, pool in pools.items():
        if len(pool) < need:
            raise DeepFNError(
                f"experiments: group {group}/{name} has {len(pool)} subject(s) in its pool "
                f"(template excluded) but needs n_train + n_val + min_test = {exp.n_train} + "
                f"{exp.n_val} + {exp.min_test} = {need}; add subjects (synthesize.subjects) or "
                "lower experiments.n_train / experiments.n_val")


def _seed_of(*parts: object) -> int:
    """A deterministic 31-bit seed of the parts (stable across processes, unlike ``hash``)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def split_seed(seed: int, group: str, repetition: int) -> int:
    """The split seed of (experiments.seed, group split, repetition)."""
    return _seed_of(seed, group, repetition)


@dataclass(frozen=True)
class GroupSplit:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    group: str
    repetition: int
    seed: int
    groups: dict[str, GroupSplit]


def draw_split(pools: Mapping[str, Sequence[str]], group: str, repetition: int,
               exp: ExperimentsSettings) -> Split:
    """Draw train/val/test subjects for every group of the split (pools checked first)."""
    check_pools(pools, group, exp)
    seed = split_seed(exp.seed, group, repetition)
    rng = np.random.default_rng(seed)
    out = {}
    a, b = exp.n_train, exp.n_train + exp.n_val
    for name in sorted(pools):
        pool = sorted(pools[name])
        perm = [pool[i] for i in rng.permutation(len(pool))]
        out[name] = GroupSplit(tuple(sorted(perm[:a])), tuple(sorted(perm[a:b])),
                               tuple(sorted(perm[b:])))
    return Split(group, repetition, seed, out)


@dataclass(frozen=True)
class Evaluation:
    """One evaluated condition of a trained model = one MLflow child run."""

    group: str
    evaluation: str  # dependent | independent
    train_group: str
    test_group: str
    normalization: str
    repetition: int
    split_seed: int
    train_subjects: tuple[str, ...]
    val_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]

    @property
    def condition(self) -> str:
        """Parent run name, e.g. ``gender/independent/M->F/deepfn``."""
        return (f"{self.group}/{self.evaluation}/{self.train_group}->{self.test_group}/"
                f"{self.normalization}")

    def fields(self) -> dict[str, Any]:
        """All fields (what the run key is made of)."""
        return asdict(self)


@dataclass(frozen=True)
class ModelPlan:
    """One model to train: its data (train/val parts of subjects) and what it is tested on."""

    name: str  # e.g. "gender/r0/F/deepfn", "person/r1/F003/original"
    normalization: str
    aus: tuple[int, ...]
    seed: int  # init + batch order; the same for both normalizations
    train: tuple[str, ...]
    val: tuple[str, ...]
    evaluations: tuple[Evaluation, ...]


def model_parts(plan: ModelPlan, subject_frames: str
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(train parts, validation parts)`` a model reads of its train / validation subjects.

    With ``subject_frames: whole`` a cross-person model -- none of its train or validation
    subjects is one of its test subjects -- reads every frame of them (paper §4.3: four
    participants train, two validate); a person-dependent model, and every model with
    ``parts``, reads the train part of its train subjects and the validation part of its
    validation subjects, so its own test frames stay unseen.  Tests always read test parts.
    """
    tested = {s for ev in plan.evaluations for s in ev.test_subjects}
    return cross_person_parts("parts" if tested & {*plan.train, *plan.val} else subject_frames)


def cross_person_parts(subject_frames: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(train parts, validation parts)`` of a cross-person model (:func:`model_parts`)."""
    return (ALL_PARTS, ALL_PARTS) if subject_frames == "whole" else ((TRAIN,), (VAL,))


def _model_seed(split: Split, who: str) -> int:
    # No normalization in it: original and deepfn models start from the same weights.
    return _seed_of(split.seed, "model", who)


def dependent_subjects(split: Split, test: Sequence[str], k: int) -> tuple[str, ...]:
    """The test subjects of a ``person`` split that get person-dependent models: all (``k`` 0,
    the paper) or ``k`` of them drawn with the split's seed (sorted; the same for every
    normalization)."""
    if k <= 0 or k >= len(test):
        return tuple(test)
    rng = np.random.default_rng(_seed_of(split.seed, "dependent"))
    return tuple(sorted(test[i] for i in rng.permutation(len(test))[:k]))


def _plans_for_split(split: Split, normalization: str, n_dependent: int = 0) -> list[ModelPlan]:
    g, r, aus = split.group, split.repetition, split_aus(split.group)

    def ev(kind: str, tg: str, test_g: str, train: GroupSplit, test: tuple[str, ...]
           ) -> Evaluation:
        return Evaluation(g, kind, tg, test_g, normalization, r, split.seed, train.train,
                          train.val, test)

    plans = []
    if g == "person":
        gs = split.groups["others"]
        plans.append(ModelPlan(f"{g}/r{r}/others/{normalization}", normalization, aus,
                               _model_seed(split, "others"), gs.train, gs.val,
                               (ev("independent", "others", "others", gs, gs.test),)))
        # person-dependent: the subject's own parts, same test frames
        for s in dependent_subjects(split, gs.test, n_dependent):
            own = GroupSplit((s,), (s,), (s,))
            plans.append(ModelPlan(f"{g}/r{r}/{s}/{normalization}", normalization, aus,
                                   _model_seed(split, s), own.train, own.val,
                                   (ev("dependent", "self", "self", own, own.test),)))
        return plans
    for a in sorted(split.groups):
        ga = split.groups[a]
        evals = [ev("dependent", a, a, ga, ga.test)]
        evals += [ev("independent", a, b, ga, split.groups[b].test)
                  for b in sorted(split.groups) if b != a]
        plans.append(ModelPlan(f"{g}/r{r}/{a}/{normalization}", normalization, aus,
                               _model_seed(split, a), ga.train, ga.val, tuple(evals)))
    return plans


def plan_models(subjects: pd.DataFrame, template: str, exp: ExperimentsSettings) -> list[ModelPlan]:
    """Every model of the experiments (pools are checked here, before any training)."""
    pools = {g: group_pools(subjects, g, template) for g in exp.groups}
    plans: list[ModelPlan] = []
    for r in range(exp.repetitions):
        for g in exp.groups:
            split = draw_split(pools[g], g, r, exp)
            for norm in exp.normalizations:
                plans.extend(_plans_for_split(split, norm, exp.dependent_subjects))
    return plans
