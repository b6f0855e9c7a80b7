"""The synthetic FACS renderer: roster, labels, determinism, AU locality, identity control."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepfn.data.corpus import AUS, DISFA_AUS, SUBJECT_COLUMNS, read_subject, read_subjects
from deepfn.data.synth import (
    identity_batch,
    nuisance_batch,
    render_faces,
    roster_metadata,
    synthesize_corpus,
    write_preview,
    write_strip,
)
from deepfn.data.synth.behavior import code_labels, subject_intensities
from deepfn.data.synth.generate import plan_subject
from deepfn.data.synth.identity import sample_identity
from deepfn.data.synth.render import VIEW, VIEW_CY
from deepfn.data.synth.roster import subject_rng
from deepfn.errors import DeepFNError

ROSTER_20_10 = [f"F{i:03d}" for i in range(1, 11)] + [f"M{i:03d}" for i in range(1, 11)] \
    + [f"SN{i:03d}" for i in range(1, 11)]

# FACS region of each AU in canonical face coordinates: (|x| min, |x| max, y min, y max),
# y grows downwards; brows ~ -0.2, eyes ~ -0.08, nose tip ~ 0.18, mouth ~ 0.31, chin ~ 0.66.
REGIONS = {
    1: (0.0, 0.32, -0.62, -0.1), 2: (0.08, 0.55, -0.62, -0.1), 4: (0.0, 0.45, -0.42, -0.02),
    6: (0.05, 0.5, -0.2, 0.36), 7: (0.05, 0.36, -0.22, 0.04), 10: (0.0, 0.32, 0.05, 0.4),
    12: (0.0, 0.45, -0.16, 0.5), 14: (0.0, 0.34, 0.15, 0.45), 15: (0.0, 0.32, 0.2, 0.55),
    17: (0.0, 0.28, 0.22, 0.68), 23: (0.0, 0.26, 0.15, 0.42), 24: (0.0, 0.28, 0.15, 0.45),
}


def _region_mask(au: int, size: int) -> torch.Tensor:
    c = ((torch.arange(size) + 0.5) * 2 / size - 1) * VIEW
    x, y = c.abs().view(1, -1), (c + VIEW_CY).view(-1, 1)
    x0, x1, y0, y1 = REGIONS[au]
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def _ident(p: dict[str, float], n: int) -> dict[str, torch.Tensor]:
    return {k: torch.full((n,), v) for k, v in p.items()}


# --- roster -------------------------------------------------------------------------------


def test_roster_groups_for_20_plus_10():
    meta = roster_metadata(ROSTER_20_10, seed=0)
    assert list(meta.columns) == list(SUBJECT_COLUMNS)
    assert list(meta["subject"]) == ROSTER_20_10
    bp4d = meta[meta.dataset == "bp4d"]
    assert (bp4d.gender == bp4d.subject.str[0]).all()
    assert (bp4d.skin_type <= 2).sum() >= 8 and (bp4d.skin_type >= 5).sum() >= 8
    disfa = meta[meta.dataset == "disfa"]
    assert len(disfa) == 10 and set(disfa.gender) <= {"F", "M"}
    assert (disfa.skin_type <= 2).sum() == 4 and (disfa.skin_type >= 5).sum() == 4
    assert meta.skin_type.between(1, 6).all() and (meta.expressivity > 0).all()
    assert meta.expressivity.nunique() == len(meta)  # expressivity varies per person
    # darker skin more often female among BP4D-like subjects
    assert (bp4d[bp4d.skin_type >= 5].gender == "F").sum() > (bp4d[bp4d.skin_type >= 5]
                                                              .gender == "M").sum()


def test_roster_rows_do_not_depend_on_the_rest_of_the_roster():
    full = roster_metadata(ROSTER_20_10, seed=4)
    part = roster_metadata(["M007", "SN003"], seed=4)
    assert full.loc[["M007", "SN003"]].equals(part)
    assert not roster_metadata(ROSTER_20_10, seed=5).equals(full)


@pytest.mark.parametrize("bad", ["X001", "F01", "SN1234", "f001", "M001 "])
def test_bad_subject_ids_raise(bad):
    with pytest.raises(DeepFNError, match="F001") as err:
        roster_metadata(["F001", bad], seed=0)
    assert repr(bad) in str(err.value) and "\n" not in str(err.value)


def test_duplicate_ids_raise():
    with pytest.raises(DeepFNError, match="twice"):
        roster_metadata(["F001", "F001"], seed=0)


# --- behaviour and labels -----------------------------------------------------------------


def test_label_coding():
    inten = np.array([[0.49] * 12, [0.5] * 12, [1.6] * 12, [5.0] * 12])
    occ, lev = code_labels(inten, "bp4d")
    assert lev[:, 0].tolist() == [0, 1, 2, 5] and (occ == (lev >= 1)).all()
    occ, lev = code_labels(inten, "disfa")
    coded = np.isin(AUS, DISFA_AUS)
    assert (occ[:, ~coded] == -1).all() and (lev[:, ~coded] == -1).all()
    assert occ[:, coded].T.tolist()[0] == [0, 0, 1, 1]


def test_base_rates_and_expressivity():
    meta = roster_metadata([f"F{i:03d}" for i in range(1, 21)], seed=0)
    occs, activity = [], []
    for sid, row in meta.iterrows():
        inten, _, _ = subject_intensities("bp4d", 30, expressivity=row.expressivity,
                                          rng=subject_rng(0, sid, "behavior"))
        occs.append(code_labels(inten, "bp4d")[0])
        activity.append(inten.sum())
    rate = dict(zip(AUS, np.concatenate(occs).mean(0), strict=True))
    for au in (6, 7, 10, 12):
        assert 0.2 <= rate[au] <= 0.6, (au, rate[au])
    for au in (2, 15, 23):
        assert 0.04 <= rate[au] <= 0.25, (au, rate[au])
    assert np.corrcoef(meta.expressivity, activity)[0, 1] > 0.3


@pytest.mark.parametrize("frames", [6, 30])
def test_every_au_occurs_in_every_part_of_every_subject(frames: int) -> None:
    """The default roster (params.yaml: F001-F010, M001-M010, SN001-SN010), labels only: every
    coded AU has positives in every subject's train, validation and test part."""
    from deepfn.au.protocol import PARTS, frame_parts
    from deepfn.data.synth.generate import plan_subject

    ids = ([f"F{i:03d}" for i in range(1, 11)] + [f"M{i:03d}" for i in range(1, 11)]
           + [f"SN{i:03d}" for i in range(1, 11)])
    meta = roster_metadata(ids, seed=0)
    for sid, row in meta.iterrows():
        plan = plan_subject(row, seed=0, frames_per_sequence=frames)
        occ, _ = code_labels(plan.intensity, plan.dataset)
        parts = frame_parts(plan.sequence, plan.frame)
        coded = (occ >= 0).all(0)
        for k, name in enumerate(PARTS):
            pos = (occ[parts == k] == 1).sum(0)
            missing = [f"AU{a:02d}" for a, c, n in zip(AUS, coded, pos, strict=True)
                       if c and n == 0]
            assert not missing, (sid, name, missing)


def test_cover_parts_only_adds_activity():
    meta = roster_metadata(["F001"], seed=3)
    row = meta.iloc[0]
    kw = {"expressivity": float(row.expressivity)}
    raw, seq, frame = subject_intensities("bp4d", 30, rng=subject_rng(3, "F001", "behavior"),
                                          cover=False, **kw)
    covered, _, _ = subject_intensities("bp4d", 30, rng=subject_rng(3, "F001", "behavior"), **kw)
    assert (covered >= raw - 1e-12).all() and covered.max() <= 5.0


# --- corpus ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    meta = synthesize_corpus(out, ["F001", "M002", "SN001"], seed=7, frames_per_sequence=3,
                             image_size=48, progress=False)
    return out, meta


def test_corpus_format_and_labels(corpus):
    out, meta = corpus
    assert read_subjects(out / "subjects.csv").equals(meta)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "synthetic" and manifest["image_size"] == 48
    assert manifest["seed"] == 7 and manifest["frames_per_sequence"] == 3
    assert manifest["identity_strength"] == 1.0 and set(manifest["subjects"]) == set(meta.index)
    coded = np.isin(AUS, DISFA_AUS)
    for sid in ("F001", "M002"):
        d = read_subject(out, sid)
        assert d.images.shape == (24, 48, 48) and d.images.dtype == np.uint8
        assert d.occurrence.dtype == np.int8 and d.intensity.dtype == np.int8
        assert d.sequence.tolist() == [f"T{t}" for t in range(1, 9) for _ in range(3)]
        assert d.frame.tolist() == [0, 1, 2] * 8
        assert (d.occurrence == (d.intensity >= 1)).all() and d.intensity.min() >= 0
    d = read_subject(out, "SN001")
    assert d.images.shape == (24, 48, 48) and set(d.sequence) == {"V1"}
    assert d.frame.tolist() == list(range(24))
    assert (d.occurrence[:, ~coded] == -1).all() and (d.intensity[:, ~coded] == -1).all()
    assert (d.occurrence[:, coded] == (d.intensity[:, coded] >= 2)).all()


def test_deterministic_per_seed_and_per_subject(corpus, tmp_path):
    out, _ = corpus
    synthesize_corpus(tmp_path / "a", ["SN001", "F001"], seed=7, frames_per_sequence=3,
                      image_size=48, progress=False)
    synthesize_corpus(tmp_path / "b", ["F001"], seed=8, frames_per_sequence=3, image_size=48,
                      progress=False)
    for sid in ("F001", "SN001"):  # same seed: identical, whatever else is in the roster
        x, y = read_subject(out, sid), read_subject(tmp_path / "a", sid)
        for k in ("images", "occurrence", "intensity", "sequence", "frame"):
            assert np.array_equal(getattr(x, k), getattr(y, k)), (sid, k)
    other = read_subject(tmp_path / "b", "F001")
    assert not np.array_equal(other.images, read_subject(out, "F001").images)


# --- renderer -------------------------------------------------------------------------------


def test_each_au_changes_its_facs_region():
    size = 64
    rng = np.random.default_rng(0)
    people = [identity_batch(1), _ident(sample_identity(rng, "M", 6), 1),
              _ident(sample_identity(rng, "F", 1), 1)]
    n = 1 + 2 * len(AUS)
    aus = torch.zeros(n, len(AUS))
    for i in range(len(AUS)):
        aus[1 + i, i] = 5.0
        aus[1 + len(AUS) + i, i] = 1.0
    for person in people:
        ident = {k: v.expand(n) for k, v in person.items()}
        img = render_faces(ident, aus, nuisance_batch(n), size).float()
        for i, au in enumerate(AUS):
            d5 = (img[1 + i] - img[0]).abs()
            d1 = (img[1 + len(AUS) + i] - img[0]).abs()
            inside = float(d5[_region_mask(au, size)].sum() / d5.sum())
            assert inside > 0.8, (au, inside)
            assert d5.sum() > 1.5 * d1.sum() > 0, au  # graded: subtle at 1, strong at 5


def test_a_full_beard_leaves_the_mouth_aus_visible():
    """Facial hair covers jaw and cheeks, not the lips, corners and chin boss: every mouth AU
    changes a bearded face at least 70 % as much as a clean-shaven one (64 px)."""
    size, n = 64, 1 + len(AUS)
    aus = torch.zeros(n, len(AUS))
    aus[torch.arange(1, n), torch.arange(len(AUS))] = 3.0
    img = {b: render_faces(identity_batch(n, beard=b, hair_tone=0.1, jaw=0.24), aus,
                           nuisance_batch(n), size).float() for b in (0.0, 1.0)}
    for i, au in enumerate(AUS):
        shaved, bearded = ((img[b][1 + i] - img[b][0]).abs().sum() for b in (0.0, 1.0))
        assert bearded > 0.7 * shaved, (au, float(bearded / shaved))
    c = ((torch.arange(size) + 0.5) * 2 / size - 1) * VIEW
    x, y = c.abs().view(1, -1), (c + VIEW_CY).view(-1, 1)
    lips = (x <= 0.14) & (y >= 0.28) & (y <= 0.36)
    jaw = (x >= 0.3) & (x <= 0.42) & (y >= 0.3) & (y <= 0.5)
    beard = (img[1.0][0] - img[0.0][0]).abs()
    assert beard[jaw].mean() > 8 and beard[lips].mean() < 3  # hair on the jaw, lips clear


def test_resting_idiosyncrasies_differ_by_gender_and_dataset():
    """Women's brows rest higher, men carry more glabellar lines; DISFA-like (older) people
    more permanent lines, deeper folds and narrower lids -- same draws, shifted by group."""
    def draw(gender: str, dataset: str) -> dict[str, np.ndarray]:
        ps = [sample_identity(np.random.default_rng(i), gender, 3, dataset=dataset)
              for i in range(400)]
        return {k: np.array([p[k] for p in ps]) for k in ps[0]}

    f, m, d = draw("F", "bp4d"), draw("M", "bp4d"), draw("M", "disfa")
    assert f["rest_brow"].mean() > m["rest_brow"].mean() + 0.008
    assert (m["rest_furrow"] > 0).mean() > (f["rest_furrow"] > 0).mean() + 0.1
    assert (d["rest_forehead"] > 0).mean() > (m["rest_forehead"] > 0).mean() + 0.08
    assert d["rest_fold"].mean() > m["rest_fold"].mean() + 0.05
    assert d["rest_aperture"].mean() < m["rest_aperture"].mean()
    assert np.array_equal(m["face_width"], d["face_width"])  # the rest of the face is the same
    with pytest.raises(DeepFNError, match="dataset"):
        sample_identity(np.random.default_rng(0), "F", 3, dataset="ck+")


def test_identity_strength_zero_is_one_face():
    rng = np.random.default_rng(3)
    a = sample_identity(rng, "F", 1, identity_strength=0.0)
    b = sample_identity(rng, "M", 6, identity_strength=0.0)
    assert a == b
    meta = roster_metadata(["F002", "M005"], seed=1)
    plans = [plan_subject(meta.loc[s], seed=1, identity_strength=0.0, frames_per_sequence=2)
             for s in meta.index]
    assert plans[0].identity == plans[1].identity
    nuis = nuisance_batch(2, yaw=0.05, light_x=0.2, seed=11.0)
    aus = torch.zeros(2, len(AUS))
    same = render_faces({k: torch.tensor([a[k], b[k]]) for k in a}, aus, nuis, 48)
    assert torch.equal(same[0], same[1])
    c = sample_identity(np.random.default_rng(3), "F", 1, identity_strength=1.0)
    d = sample_identity(np.random.default_rng(4), "M", 6, identity_strength=1.0)
    diff = render_faces({k: torch.tensor([c[k], d[k]]) for k in c}, aus, nuis, 48)
    assert (diff[0].float() - diff[1].float()).abs().mean() > 5


def test_render_checks_inputs():
    with pytest.raises(DeepFNError, match="missing"):
        render_faces({"albedo": torch.ones(1)}, torch.zeros(1, 12), nuisance_batch(1))
    with pytest.raises(DeepFNError, match="shape"):
        render_faces(identity_batch(2), torch.zeros(2, 11), nuisance_batch(2))


def test_preview_and_strip(tmp_path):
    from PIL import Image

    p = write_preview(tmp_path / "p.png", seed=0)
    s = write_strip(tmp_path / "s.png", seed=0, n_frames=4)
    assert Image.open(p).size[0] > 13 * 128 and Image.open(s).size[0] > 4 * 128
