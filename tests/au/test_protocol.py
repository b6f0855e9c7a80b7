"""Pools, splits and frame parts (paper §4.1, §4.3; docs/protocol.md)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfn.au.protocol import (
    ALL_PARTS,
    TEST,
    TRAIN,
    VAL,
    draw_split,
    frame_parts,
    group_pools,
    model_parts,
    plan_models,
    segment_parts,
    split_seed,
)
from deepfn.data.corpus import DISFA_AUS, read_subjects
from deepfn.errors import DeepFNError

from .conftest import TEMPLATE, smoke_settings


@pytest.fixture(scope="module")
def subjects(corpora):
    return read_subjects(corpora["original"] / "subjects.csv")


def test_each_task_is_cut_by_time_into_all_three_parts() -> None:
    per = 8
    seq = np.repeat(["T8", "T1", "T6", "T5", "T7", "T2", "T3", "T4"], per)
    rng = np.random.default_rng(0)
    frame = np.concatenate([rng.permutation(per) for _ in range(8)])  # file order != time
    parts = frame_parts(seq, frame)
    for task in np.unique(seq):
        sel = seq == task
        by_time = parts[sel][np.argsort(frame[sel])]
        assert by_time.tolist() == [TRAIN] * 5 + [VAL] + [TEST] * 2, task


@pytest.mark.parametrize("n, counts", [(3, [1, 1, 1]), (4, [2, 1, 1]), (6, [3, 1, 2]),
                                       (30, [18, 4, 8]), (120, [75, 15, 30])])
def test_segment_parts_are_contiguous_and_never_empty(n: int, counts: list[int]) -> None:
    parts = segment_parts(n)
    assert np.bincount(parts, minlength=3).tolist() == counts
    assert (np.diff(parts) >= 0).all()  # train, then validation, then test


def test_single_video_is_cut_into_eight_segments_of_eight_blocks() -> None:
    n = 128
    rng = np.random.default_rng(0)
    order = rng.permutation(n)  # file order need not be time order
    parts = frame_parts(np.array(["V1"] * n), order)
    by_time = parts[np.argsort(order)]
    assert by_time.tolist() == ([TRAIN] * 10 + [VAL] * 2 + [TEST] * 4) * 8


def test_explicit_part_sequences() -> None:
    seq = np.array(["train", "val", "test", "train"])
    assert frame_parts(seq, np.arange(4)).tolist() == [TRAIN, VAL, TEST, TRAIN]


def test_pools_exclude_template_and_follow_the_paper(subjects) -> None:
    person = group_pools(subjects, "person", TEMPLATE)
    assert TEMPLATE not in person["others"] and len(person["others"]) == 8
    assert not any(s.startswith("SN") for s in person["others"])
    assert group_pools(subjects, "gender", TEMPLATE) == {
        "F": ["F001", "F002", "F003", "F004"], "M": ["M001", "M002", "M003", "M004"]}
    assert group_pools(subjects, "skin", TEMPLATE) == {
        "lighter": ["F001", "F002", "M001", "M002"], "darker": ["F003", "F004", "M003", "M004"]}
    ds = group_pools(subjects, "dataset", TEMPLATE)
    assert ds["disfa"] == ["SN001", "SN002", "SN003", "SN004"] and len(ds["bp4d"]) == 8


@pytest.mark.parametrize("group", ["person", "gender", "skin", "dataset"])
def test_splits_are_deterministic_and_disjoint(subjects, group: str) -> None:
    exp = smoke_settings().experiments
    pools = group_pools(subjects, group, TEMPLATE)
    a, b = draw_split(pools, group, 0, exp), draw_split(pools, group, 0, exp)
    assert a == b and a.seed == split_seed(exp.seed, group, 0)
    assert draw_split(pools, group, 1, exp).seed != a.seed
    for name, gs in a.groups.items():
        assert len(gs.train) == 2 and len(gs.val) == 1 and len(gs.test) >= 1
        sets = [set(gs.train), set(gs.val), set(gs.test)]
        assert set.union(*sets) == set(pools[name])
        assert sum(map(len, sets)) == len(pools[name])
        assert TEMPLATE not in set.union(*sets)


def test_too_few_subjects_is_one_line_naming_the_group(subjects) -> None:
    exp = smoke_settings(n_train=3, n_val=2).experiments
    with pytest.raises(DeepFNError) as err:
        plan_models(subjects, TEMPLATE, exp)
    msg = str(err.value)
    assert "\n" not in msg
    assert "group gender/F has 4 subject(s)" in msg and "3 + 2 + 1 = 6" in msg
    assert "synthesize.subjects" in msg and "experiments.n_train" in msg


def test_dependent_and_independent_see_the_same_test_frames(subjects) -> None:
    exp = smoke_settings(groups=["person", "gender", "dataset"], repetitions=2).experiments
    plans = plan_models(subjects, TEMPLATE, exp)
    evs = [ev for p in plans for ev in p.evaluations]
    for r in range(2):
        for norm in ("original", "deepfn"):
            sel = [e for e in evs if e.repetition == r and e.normalization == norm]
            indep = [e for e in sel if e.group == "person" and e.evaluation == "independent"]
            dep = [e for e in sel if e.group == "person" and e.evaluation == "dependent"]
            assert len(indep) == 1
            # one dependent model per independent test subject, trained on its own parts
            assert sorted(e.test_subjects[0] for e in dep) == sorted(indep[0].test_subjects)
            assert all(e.train_subjects == e.val_subjects == e.test_subjects for e in dep)
            for g, a, b in (("gender", "F", "M"), ("dataset", "bp4d", "disfa")):
                cond = {e.condition: e for e in sel if e.group == g}
                aa = cond[f"{g}/dependent/{a}->{a}/{norm}"]
                ba = cond[f"{g}/independent/{b}->{a}/{norm}"]
                assert aa.test_subjects == ba.test_subjects
                assert not set(aa.test_subjects) & set(ba.train_subjects + ba.val_subjects)
    dataset_plans = [p for p in plans if p.name.startswith("dataset/")]
    assert all(p.aus == DISFA_AUS for p in dataset_plans)
    # original and deepfn share splits and model seeds
    by_name = {p.name: p for p in plans}
    for p in plans:
        if p.normalization == "original":
            twin = by_name[p.name.replace("/original", "/deepfn")]
            assert (twin.seed, twin.train, twin.val) == (p.seed, p.train, p.val)
            assert [e.test_subjects for e in twin.evaluations] == \
                [e.test_subjects for e in p.evaluations]


def test_dependent_subjects_draws_that_many_per_repetition_the_same_for_every_normalization(
        subjects) -> None:
    """`experiments.dependent_subjects`: k of each repetition's test subjects get
    person-dependent models (drawn with the split's seed, so repetitions differ); the
    person-independent model is still tested on all of them; 0 = every test subject."""
    def dep_subjects(k: int) -> dict[tuple[int, str], list[str]]:
        exp = smoke_settings(groups=["person"], repetitions=3,
                             dependent_subjects=k).experiments
        out: dict[tuple[int, str], list[str]] = {}
        for p in plan_models(subjects, TEMPLATE, exp):
            for ev in p.evaluations:
                if ev.evaluation == "dependent":
                    out.setdefault((ev.repetition, ev.normalization), []).append(
                        ev.test_subjects[0])
        return out

    every, two = dep_subjects(0), dep_subjects(2)
    assert every == dep_subjects(1000)  # more than there are: every test subject
    for (r, norm), subs in two.items():
        assert len(subs) == 2 and set(subs) <= set(every[r, norm])
        assert subs == two[r, "deepfn" if norm == "original" else "original"]
    assert len({tuple(v) for v in two.values()}) > 1  # not the same two every repetition
    exp = smoke_settings(groups=["person"], repetitions=3, dependent_subjects=2).experiments
    indep = [ev for p in plan_models(subjects, TEMPLATE, exp) for ev in p.evaluations
             if ev.evaluation == "independent"]
    assert all(len(ev.test_subjects) == len(every[ev.repetition, ev.normalization])
               for ev in indep)


@pytest.mark.parametrize("frames", ["parts", "whole"])
def test_model_parts_keep_every_models_test_frames_unseen(subjects, frames: str) -> None:
    """`whole`: cross-person models read every part of their train/val subjects; a person-
    dependent model reads its own train/val parts; no model reads a test subject's test part
    for training or selection."""
    exp = smoke_settings(groups=["person", "gender", "dataset"], subject_frames=frames,
                         repetitions=2).experiments
    for p in plan_models(subjects, TEMPLATE, exp):
        train, val = model_parts(p, frames)
        tested = {s for ev in p.evaluations for s in ev.test_subjects}
        if tested & {*p.train, *p.val}:
            assert (train, val) == ((TRAIN,), (VAL,)) and p.train == p.val == tuple(tested)
        else:
            assert (train, val) == ((ALL_PARTS, ALL_PARTS) if frames == "whole"
                                    else ((TRAIN,), (VAL,)))
        assert TEST not in train + val or not tested & {*p.train, *p.val}
