"""BP4D / DISFA importers on tiny fixtures written in the community layouts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from deepfn.data.corpus import AUS, read_manifest, read_subject, read_subjects
from deepfn.data.importers import (
    REPORT_NAME,
    FaceCropper,
    ImportReport,
    import_bp4d,
    import_corpus,
    import_disfa,
    read_metadata,
)
from deepfn.errors import DeepFNError

SIZE = 32
# Real AU_OCC files code more AUs than ours, in this order; the importer keeps our 12.
OCC_HEADER = [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 27]
EXTRA_AUS = [a for a in OCC_HEADER if a not in AUS]
COL = {au: i for i, au in enumerate(AUS)}


# --------------------------------------------------------------------------- fixture writers


def gray_value(frame: int) -> int:
    return (frame * 20) % 250


def write_frame(path: Path, value: int, shape: tuple[int, int] = (40, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full(shape, value, np.uint8)
    img[:, :3] = 255 - value  # content outside the center crop
    assert cv2.imwrite(str(path), img)


def draw_face(size: int = 200) -> np.ndarray:
    """A cartoon face (dark brows/eyes/mouth on a bright oval) that the Haar cascade detects."""
    img = np.full((size, size), 40, np.uint8)
    c, s = size // 2, size / 200
    cv2.ellipse(img, (c, c), (int(60 * s), int(80 * s)), 0, 0, 360, 200, -1)
    for dx in (-28, 28):
        cv2.ellipse(img, (c + int(dx * s), c - int(30 * s)), (int(18 * s), int(5 * s)),
                    0, 0, 360, 60, -1)
        cv2.ellipse(img, (c + int(dx * s), c - int(15 * s)), (int(13 * s), int(7 * s)),
                    0, 0, 360, 30, -1)
    cv2.line(img, (c, c - int(10 * s)), (c, c + int(20 * s)), 150, max(1, int(3 * s)))
    cv2.ellipse(img, (c, c + int(22 * s)), (int(10 * s), int(4 * s)), 0, 0, 360, 110, -1)
    cv2.ellipse(img, (c, c + int(45 * s)), (int(25 * s), int(7 * s)), 0, 0, 360, 60, -1)
    return cv2.GaussianBlur(img, (0, 0), 2 * s)


def write_occ(path: Path, rows: dict[int, dict[int, int]], header: list[str] | None = None) -> None:
    """rows: frame -> {au: value}; unspecified AUs are 0 (extra AUs get 1, to prove they're
    ignored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header or ["0", *map(str, OCC_HEADER)]
    lines = [",".join(header)]
    for frame, values in rows.items():
        cells = [str(frame)]
        for au in OCC_HEADER:
            cells.append(str(values.get(au, 1 if au in EXTRA_AUS else 0)))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_pairs(path: Path, pairs: list[tuple[int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f},{v}\n" for f, v in pairs))


def write_metadata(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    pd.DataFrame(rows, columns=["subject", "gender", "skin_type"]).to_csv(path, index=False)
    return path


def make_bp4d(tmp_path: Path) -> Path:
    """F001: T1 images 1,2,10 (labels 1,2,3,10); T2 images 5,7,100 (labels 5,100).
    M001: T1 images 1,2 (labels 1,2)."""
    root = tmp_path / "BP4D"
    for frame in (1, 2, 10):
        write_frame(root / "F001" / "T1" / f"{frame}.jpg", gray_value(frame))
    for frame in (5, 7, 100):
        write_frame(root / "F001" / "T2" / f"{frame}.jpg", gray_value(frame))
    for frame in (1, 2):
        write_frame(root / "M001" / "T1" / f"{frame}.jpg", gray_value(frame))
    occ = root / "AUCoding" / "AU_OCC"
    write_occ(occ / "F001_T1.csv", {
        1: {1: 1, 2: 9, 12: 1},
        2: {4: 1, 24: 9},
        3: {1: 1},
        10: {23: 1, 24: 1},
    })
    write_occ(occ / "F001_T2.csv", {5: {6: 1}, 100: {}})
    write_occ(occ / "M001_T1.csv", {1: {1: 1}, 2: {1: 1, 2: 1}})
    ints = root / "AUCoding" / "AU_INT"
    write_pairs(ints / "AU06" / "F001_T1_AU06.csv", [(1, 3), (2, 9), (3, 1), (10, 0)])
    write_pairs(ints / "AU12" / "F001_T1_AU12.csv", [(1, 5), (2, 0)])
    return root


DISFA_VALUES = {  # au -> intensity of frames 1..6
    1: [0, 1, 2, 3, 4, 5],
    2: [5, 4, 3, 2, 1, 0],
    4: [0, 0, 0, 0, 0, 0],
    6: [2, 2, 1, 1, 0, 0],
    12: [1, 1, 1, 1, 1, 2],
}


def write_video(path: Path, values: list[int], shape: tuple[int, int] = (48, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10,
                             (shape[1], shape[0]), isColor=True)
    assert writer.isOpened()
    for v in values:
        writer.write(np.full((*shape, 3), v, np.uint8))
    writer.release()


def make_disfa(tmp_path: Path, n: int = 6) -> Path:
    root = tmp_path / "DISFA"
    write_video(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi",
                [gray_value(i) for i in range(1, n + 1)])
    labels = root / "ActionUnit_Labels" / "SN001"
    for au, values in DISFA_VALUES.items():
        write_pairs(labels / f"SN001_au{au}.txt", list(enumerate(values[:n], start=1)))
    # AUs we don't use are ignored, whatever they hold
    write_pairs(labels / "SN001_au9.txt", [(1, 7)])
    return root


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    return write_metadata(tmp_path / "meta.csv",
                          [("F001", "F", 2), ("M001", "M", 5), ("SN001", "F", 6)])


def run(tmp_path: Path, meta: Path, *, bp4d: Path | None = None, disfa: Path | None = None,
        detector: str = "none", out: str = "corpus") -> tuple[Path, ImportReport]:
    out_dir = tmp_path / out
    report = import_corpus(out_dir, bp4d_root=bp4d, disfa_root=disfa, metadata_csv=meta,
                           image_size=SIZE, detector=detector, progress=False)
    return out_dir, report


# --------------------------------------------------------------------------- happy paths


def test_bp4d_values_order_and_unknowns(tmp_path, meta):
    out, report = run(tmp_path, meta, bp4d=make_bp4d(tmp_path))
    f = read_subject(out, "F001")
    # numeric (not lexical) frame order inside each task, tasks in order
    assert list(f.sequence) == ["T1", "T1", "T1", "T2", "T2"]
    assert list(f.frame) == [1, 2, 10, 5, 100]
    assert f.images.shape == (5, SIZE, SIZE) and f.images.dtype == np.uint8
    # the 'none' detector center-crops: the frame's gray value survives, the side band doesn't
    means = f.images[:, 8:-8, 8:-8].reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(means, [gray_value(int(x)) for x in f.frame], atol=2)
    assert abs(float(f.images[0, :, 0].mean()) - gray_value(1)) < 8

    occ = f.occurrence
    expected = np.zeros(len(AUS), np.int8)
    expected[[COL[1], COL[12]]] = 1
    expected[COL[2]] = -1  # 9 = not coded stays unknown, never 0
    np.testing.assert_array_equal(occ[0], expected)
    assert occ[1, COL[4]] == 1 and occ[1, COL[24]] == -1
    assert occ[2, COL[23]] == 1 and occ[2, COL[24]] == 1
    assert (occ[3] == np.where(np.arange(len(AUS)) == COL[6], 1, 0)).all()
    assert (occ >= -1).all() and set(np.unique(occ)) <= {-1, 0, 1}

    inten = f.intensity
    assert inten[0, COL[6]] == 3 and inten[1, COL[6]] == -1 and inten[2, COL[6]] == 0
    assert inten[0, COL[12]] == 5 and inten[1, COL[12]] == 0 and inten[2, COL[12]] == -1
    others = [c for au, c in COL.items() if au not in (6, 12)]
    assert (inten[:, others] == -1).all()
    assert (inten[3:] == -1).all()  # T2 has no intensity files

    m = read_subject(out, "M001")
    assert list(m.frame) == [1, 2] and m.occurrence[1, COL[2]] == 1

    subjects = read_subjects(out / "subjects.csv")
    assert list(subjects.index) == ["F001", "M001"]
    assert subjects.loc["F001", "dataset"] == "bp4d"
    assert subjects.loc["F001", "gender"] == "F" and subjects.loc["M001", "skin_type"] == 5
    # expressivity: mean over AUs of the occurrence rate over that AU's coded frames
    coded = occ >= 0
    rates = [(occ[coded[:, j], j] == 1).mean() for j in range(len(AUS)) if coded[:, j].any()]
    assert subjects.loc["F001", "expressivity"] == pytest.approx(np.mean(rates))

    manifest = read_manifest(out)
    assert manifest["source"] == "licensed" and manifest["image_size"] == SIZE
    assert sorted(manifest["subjects"]) == ["F001", "M001"]


def test_bp4d_report_counts(tmp_path, meta):
    out, report = run(tmp_path, meta, bp4d=make_bp4d(tmp_path))
    f = report.subjects["F001"]
    assert (f.frames_read, f.dropped_no_label, f.dropped_no_image, f.dropped_no_face, f.kept) \
        == (6, 1, 1, 0, 5)  # image 7 has no label row, label row 3 has no image
    assert f.sequences == 2 and f.dataset == "bp4d"
    written = json.loads((out / REPORT_NAME).read_text())
    assert written == json.loads(json.dumps(report.to_dict()))
    assert written["totals"] == {"frames_read": 8, "dropped_no_label": 1, "dropped_no_image": 1,
                                 "dropped_no_face": 0, "kept": 7, "subjects": 2}
    assert written["subjects"]["M001"]["kept"] == 2
    assert written["detector"] == "none" and written["image_size"] == SIZE


def test_bp4d_task_without_labels_is_dropped_and_counted(tmp_path, meta):
    root = make_bp4d(tmp_path)
    for frame in (1, 2, 3):
        write_frame(root / "M001" / "T3" / f"{frame}.jpg", 10)
    _, report = run(tmp_path, meta, bp4d=root)
    assert report.subjects["M001"].dropped_no_label == 3
    assert report.subjects["M001"].kept == 2
    assert any("M001_T3.csv" in w for w in report.warnings)


def test_bp4d_layout_oddities_are_warned_about_in_order(tmp_path, meta):
    root = make_bp4d(tmp_path)
    (root / "notes").mkdir()                                         # not a subject folder
    occ = root / "AUCoding" / "AU_OCC"
    write_occ(occ / "F009_T1.csv", {1: {}})                          # no such subject folder
    (occ / "readme.txt").write_text("x")                             # not <subject>_<task>.csv
    write_occ(occ / "M001_T4.csv", {1: {}})                          # labels, no images
    for frame in (1, 2):
        write_frame(root / "M001" / "T3" / f"{frame}.jpg", 10)       # images, no labels
    _, report = run(tmp_path, meta, bp4d=root)
    bp4d = [w for w in report.warnings if w.startswith("bp4d:")]
    assert [w.split(" (")[0].split(": ", 1)[1] for w in bp4d[:3]] == [
        f"ignored folder {root / 'notes'}", f"ignored {occ / 'F009_T1.csv'}",
        f"ignored {occ / 'readme.txt'}"]
    assert bp4d[3:] == [
        f"bp4d: 2 frame(s) of {root / 'M001' / 'T3'} dropped: no label file "
        f"{occ / 'M001_T3.csv'}",
        f"bp4d: {occ / 'M001_T4.csv'} has no images ({root / 'M001' / 'T4'} missing or empty)"]
    assert report.subjects["M001"].kept == 2


def test_disfa_values_and_threshold(tmp_path, meta):
    out, report = run(tmp_path, meta, disfa=make_disfa(tmp_path))
    d = read_subject(out, "SN001")
    assert list(d.frame) == [1, 2, 3, 4, 5, 6]
    assert list(d.sequence) == ["V1"] * 6
    means = d.images.reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(means, [gray_value(i) for i in range(1, 7)], atol=4)
    for au, values in DISFA_VALUES.items():
        np.testing.assert_array_equal(d.intensity[:, COL[au]], values)
        np.testing.assert_array_equal(d.occurrence[:, COL[au]], [int(v >= 2) for v in values])
    others = [c for au, c in COL.items() if au not in DISFA_VALUES]
    assert (d.occurrence[:, others] == -1).all() and (d.intensity[:, others] == -1).all()
    r = report.subjects["SN001"]
    assert (r.frames_read, r.kept, r.dropped_no_face, r.dataset) == (6, 6, 0, "disfa")
    subjects = read_subjects(out / "subjects.csv")
    assert subjects.loc["SN001", "dataset"] == "disfa"
    # occurrence rates of AU1, 2, 4, 6, 12: 4/6, 4/6, 0, 2/6, 1/6 -> mean 11/30
    assert subjects.loc["SN001", "expressivity"] == pytest.approx(11 / 30)


def test_both_datasets_into_one_corpus(tmp_path, meta, capsys):
    out = tmp_path / "corpus"
    report = import_corpus(out, bp4d_root=make_bp4d(tmp_path), disfa_root=make_disfa(tmp_path),
                           metadata_csv=meta, image_size=SIZE, detector="none", progress=True)
    assert list(read_subjects(out / "subjects.csv")["dataset"]) == ["bp4d", "bp4d", "disfa"]
    assert sorted(read_manifest(out)["subjects"]) == ["F001", "M001", "SN001"]
    assert report.to_dict()["totals_by_dataset"]["disfa"]["kept"] == 6
    assert "SN001" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_reimport_replaces_existing_corpus(tmp_path, meta):
    out, _ = run(tmp_path, meta, disfa=make_disfa(tmp_path))
    (out / "stale.npz").write_bytes(b"old")
    run(tmp_path, meta, bp4d=make_bp4d(tmp_path))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["F001.npz", "M001.npz", "subjects.csv", "manifest.json", REPORT_NAME])


def test_iterators_directly(tmp_path, meta):
    report = ImportReport()
    cropper = FaceCropper("none", SIZE)
    subjects = list(import_bp4d(make_bp4d(tmp_path), read_metadata(meta), image_size=SIZE,
                                detector=cropper, progress=False, report=report))
    assert [s.subject for s in subjects] == ["F001", "M001"]
    disfa = list(import_disfa(make_disfa(tmp_path), read_metadata(meta), image_size=SIZE,
                              detector=cropper, progress=False, report=report))
    assert [s.subject for s in disfa] == ["SN001"]
    assert set(report.subjects) == {"F001", "M001", "SN001"}


# --------------------------------------------------------------------------- face detection


def test_face_cropper_none_center_crops():
    img = np.zeros((40, 80), np.uint8)
    img[:, 20:60] = 200
    out = FaceCropper("none", 16)(img)
    assert out.shape == (16, 16) and out.dtype == np.uint8 and (out == 200).all()


def test_haar_detects_drawn_face_and_rejects_blank():
    cropper = FaceCropper("haar", 64)
    canvas = np.full((300, 400), 40, np.uint8)
    canvas[40:240, 150:350] = draw_face(200)
    box = cropper.detect(canvas)
    assert box is not None
    x, y, w, h = box
    assert 150 <= x + w / 2 <= 350 and 40 <= y + h / 2 <= 240  # on the face
    face = cropper(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
    assert face is not None and face.shape == (64, 64) and face.dtype == np.uint8
    assert cropper(np.full((300, 400), 128, np.uint8)) is None


def test_haar_drops_and_counts_frames_without_a_face(tmp_path, meta):
    root = tmp_path / "BP4D"
    for frame in (1, 2):
        path = root / "F001" / "T1" / f"{frame}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), draw_face(200))
    write_frame(root / "F001" / "T1" / "3.jpg", 128, shape=(200, 200))  # blank: no face
    write_occ(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", {1: {1: 1}, 2: {}, 3: {}})
    out, report = run(tmp_path, meta, bp4d=root, detector="haar")
    r = report.subjects["F001"]
    assert (r.frames_read, r.dropped_no_face, r.kept) == (3, 1, 2)
    assert list(read_subject(out, "F001").frame) == [1, 2]
    assert json.loads((out / REPORT_NAME).read_text())["totals"]["dropped_no_face"] == 1


def test_subject_without_any_face_is_an_error(tmp_path, meta):
    root = tmp_path / "BP4D"
    write_frame(root / "F001" / "T1" / "1.jpg", 128, shape=(200, 200))
    write_occ(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", {1: {}})
    with pytest.raises(DeepFNError, match=r"F001: no face found"):
        run(tmp_path, meta, bp4d=root, detector="haar")
    assert not (tmp_path / "corpus").exists()


def test_unknown_detector(tmp_path, meta):
    with pytest.raises(DeepFNError, match="unknown face detector 'dlib'"):
        run(tmp_path, meta, bp4d=make_bp4d(tmp_path), detector="dlib")


# --------------------------------------------------------------------------- bad input


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not a jpeg at all" * 10)
    return path


def _zero(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncate(path: Path) -> Path:
    """A detailed JPEG cut short (a copy interrupted mid-file)."""
    noise = np.random.default_rng(0).integers(0, 256, (120, 160), dtype=np.uint8)
    assert cv2.imwrite(str(path), noise)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.9)])
    return path


def _occ(root: Path) -> Path:
    return root / "AUCoding" / "AU_OCC" / "F001_T1.csv"


def _bad_header(root: Path) -> Path:
    p = _occ(root)
    lines = p.read_text().splitlines()
    p.write_text("\n".join(["frame" + lines[0][1:], *lines[1:]]) + "\n")
    return p


def _missing_au(root: Path) -> Path:
    p = _occ(root)
    header = ["0", *(str(a) for a in OCC_HEADER if a != 24)]
    write_occ(p, {1: {}}, header=header + ["99"])
    return p


def _bad_occ_value(root: Path) -> Path:
    p = _occ(root)
    write_occ(p, {1: {}, 2: {4: 2}})
    return p


def _bad_intensity(root: Path) -> Path:
    p = root / "AUCoding" / "AU_INT" / "AU06" / "F001_T1_AU06.csv"
    write_pairs(p, [(1, 3), (2, -1)])
    return p


def _intensity_header(root: Path) -> Path:
    p = root / "AUCoding" / "AU_INT" / "AU12" / "F001_T1_AU12.csv"
    p.write_text("frame,intensity\n1,2\n")
    return p


BP4D_CASES = {
    "corrupt image": (lambda r: _corrupt(r / "F001" / "T1" / "2.jpg"), "corrupt image"),
    "zero-byte image": (lambda r: _zero(r / "F001" / "T2" / "100.jpg"), "zero-byte image"),
    "truncated image": (lambda r: _truncate(r / "M001" / "T1" / "1.jpg"), "corrupt image"),
    "wrong header": (_bad_header, "wrong header"),
    "missing AU column": (_missing_au, "no column for AU 24"),
    "occurrence value": (_bad_occ_value, "AU4 = '2'"),
    "intensity value": (_bad_intensity, "intensities 0..5"),
    "intensity header": (_intensity_header, "no header"),
}


@pytest.mark.parametrize("case", list(BP4D_CASES))
def test_bp4d_bad_input(tmp_path, meta, case):
    root = make_bp4d(tmp_path)
    mutate, message = BP4D_CASES[case]
    bad_file = mutate(root)
    with pytest.raises(DeepFNError) as err:
        run(tmp_path, meta, bp4d=root)
    text = str(err.value)
    assert "\n" not in text and str(bad_file) in text and message in text
    assert not (tmp_path / "corpus").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".corpus")]


def _disfa_corrupt_video(root: Path) -> Path:
    return _corrupt(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi")


def _disfa_zero_video(root: Path) -> Path:
    return _zero(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi")


def _disfa_header(root: Path) -> Path:
    p = root / "ActionUnit_Labels" / "SN001" / "SN001_au2.txt"
    p.write_text("frame,intensity\n" + p.read_text())
    return p


def _disfa_value(root: Path) -> Path:
    p = root / "ActionUnit_Labels" / "SN001" / "SN001_au4.txt"
    write_pairs(p, [(1, 0), (2, 6), (3, 0), (4, 0), (5, 0), (6, 0)])
    return p


def _disfa_count(root: Path) -> Path:
    labels = root / "ActionUnit_Labels" / "SN001"
    for au, values in DISFA_VALUES.items():  # 7 lines for a 6-frame video
        write_pairs(labels / f"SN001_au{au}.txt", list(enumerate([*values, 0], start=1)))
    return labels / "SN001_au1.txt"


def _disfa_files_disagree(root: Path) -> Path:
    p = root / "ActionUnit_Labels" / "SN001" / "SN001_au6.txt"
    write_pairs(p, [(1, 0), (2, 0)])
    return p


def _disfa_missing_label(root: Path) -> Path:
    p = root / "ActionUnit_Labels" / "SN001" / "SN001_au12.txt"
    p.unlink()
    return p


DISFA_CASES = {
    "unreadable video": (_disfa_corrupt_video, "unreadable video"),
    "zero-byte video": (_disfa_zero_video, "zero-byte video"),
    "label header": (_disfa_header, "no header"),
    "label value": (_disfa_value, "intensity 6"),
    "label/frame count": (_disfa_count, "7 label lines but LeftVideoSN001_comp.avi has 6 frames"),
    "label files disagree": (_disfa_files_disagree, "2 label lines but SN001_au1.txt has 6"),
    "missing label file": (_disfa_missing_label, "label file not found"),
}


@pytest.mark.parametrize("case", list(DISFA_CASES))
def test_disfa_bad_input(tmp_path, meta, case):
    root = make_disfa(tmp_path)
    mutate, message = DISFA_CASES[case]
    bad_file = mutate(root)
    with pytest.raises(DeepFNError) as err:
        run(tmp_path, meta, disfa=root)
    text = str(err.value)
    assert "\n" not in text and str(bad_file) in text and message in text
    assert not (tmp_path / "corpus").exists()


def test_failure_keeps_existing_corpus(tmp_path, meta):
    out, _ = run(tmp_path, meta, disfa=make_disfa(tmp_path))
    before = sorted(p.name for p in out.iterdir())
    root = make_bp4d(tmp_path)
    _corrupt(root / "M001" / "T1" / "2.jpg")  # the last subject fails after F001 was written
    with pytest.raises(DeepFNError, match="corrupt image"):
        run(tmp_path, meta, bp4d=root)
    assert sorted(p.name for p in out.iterdir()) == before
    assert read_manifest(out)["subjects"].keys() == {"SN001"}


def test_subject_without_metadata(tmp_path):
    meta = write_metadata(tmp_path / "meta.csv", [("F001", "F", 2)])
    with pytest.raises(DeepFNError) as err:
        run(tmp_path, meta, bp4d=make_bp4d(tmp_path))
    text = str(err.value)
    assert str(meta) in text and "M001" in text and "add a row" in text
    assert not (tmp_path / "corpus").exists()


def test_disfa_subject_without_metadata(tmp_path):
    meta = write_metadata(tmp_path / "meta.csv", [("F001", "F", 2)])
    with pytest.raises(DeepFNError, match=r"meta\.csv: no metadata for disfa subject\(s\) SN001"):
        run(tmp_path, meta, disfa=make_disfa(tmp_path))


def test_bp4d_gender_must_match_id(tmp_path):
    meta = write_metadata(tmp_path / "meta.csv", [("F001", "M", 2), ("M001", "M", 5)])
    with pytest.raises(DeepFNError, match=r"meta\.csv: subject F001 has gender M"):
        run(tmp_path, meta, bp4d=make_bp4d(tmp_path))


@pytest.mark.parametrize("content, message", [
    ("subject,gender\nF001,F\n", "missing column(s) skin_type"),
    ("subject,gender,skin_type\nF001,X,2\n", "gender 'X'"),
    ("subject,gender,skin_type\nF001,F,7\n", "skin_type '7'"),
    ("subject,gender,skin_type\nF001,F,2\nF001,F,3\n", "listed twice"),
])
def test_bad_metadata_csv(tmp_path, content, message):
    meta = tmp_path / "meta.csv"
    meta.write_text(content)
    with pytest.raises(DeepFNError) as err:
        run(tmp_path, meta, bp4d=make_bp4d(tmp_path))
    assert str(meta) in str(err.value) and message in str(err.value)


def test_missing_inputs(tmp_path, meta):
    with pytest.raises(DeepFNError, match="BP4D root not found"):
        run(tmp_path, meta, bp4d=tmp_path / "nope")
    with pytest.raises(DeepFNError, match="DISFA root not found"):
        run(tmp_path, meta, disfa=tmp_path / "nope")
    with pytest.raises(DeepFNError, match="nothing to import"):
        run(tmp_path, meta)
    with pytest.raises(DeepFNError, match="metadata CSV not found"):
        run(tmp_path, tmp_path / "absent.csv", bp4d=make_bp4d(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeepFNError, match=r"AU_OCC: BP4D occurrence labels not found"):
        run(tmp_path, meta, bp4d=tmp_path / "empty")
    with pytest.raises(DeepFNError, match=r"Videos_LeftCamera: DISFA video folder not found"):
        run(tmp_path, meta, disfa=tmp_path / "empty")
    assert not (tmp_path / "corpus").exists()


def test_subject_without_any_coded_label_is_an_error(tmp_path, meta):
    root = make_bp4d(tmp_path)
    write_occ(root / "AUCoding" / "AU_OCC" / "M001_T1.csv",
              {1: dict.fromkeys(AUS, 9), 2: dict.fromkeys(AUS, 9)})
    with pytest.raises(DeepFNError, match="subject M001 has no coded AU label"):
        run(tmp_path, meta, bp4d=root)
    assert not (tmp_path / "corpus").exists()
