"""Code fingerprints, the settings classification and dvc.yaml's code deps."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from pydantic import Field

from deepfn.config.settings import ExperimentsSettings, NormalizeSettings, Settings
from deepfn.tracking import provenance
from deepfn.tracking.provenance import (
    STAGE_SECTIONS,
    TAG_CODE_FINGERPRINT,
    classification_problems,
    code_fingerprint,
    key_parts,
    result_settings,
    stage_modules,
)

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- settings classification
def test_every_settings_field_is_classified() -> None:
    problems = classification_problems()
    assert not problems, "\n".join(problems)


def test_an_unclassified_field_is_named() -> None:
    class NewNormalize(NormalizeSettings):
        dropout: float = Field(0.0, ge=0.0)

    class NewSettings(Settings):
        normalize: NewNormalize = NewNormalize()
        extra_section: ExperimentsSettings = ExperimentsSettings()

    problems = classification_problems(NewSettings)
    assert any(p.startswith("normalize.dropout: unclassified setting") for p in problems)
    assert any(p.startswith("extra_section: settings section in no run key") for p in problems)
    assert len(problems) == 2, problems


def test_result_settings_are_the_whole_section_minus_neutral() -> None:
    s = Settings()
    got = result_settings(s, "experiments")["experiments"]
    assert set(got) == set(ExperimentsSettings.model_fields) - provenance.NEUTRAL["experiments"]
    assert got["lr"] == s.experiments.lr


def _with(section: str, **changes) -> Settings:
    s = Settings()
    return s.model_copy(update={section: getattr(s, section).model_copy(update=changes)})


def test_keys_change_with_result_settings_only() -> None:
    def parts(settings: Settings, stage: str) -> dict[str, object]:
        return key_parts(settings, stage, "cpu")

    base = parts(Settings(), "experiments")
    assert base["code"] == code_fingerprint("experiments")
    assert parts(_with("experiments", workers=7, strategy="process", repetitions=3),
                 "experiments") == base
    assert parts(_with("experiments", lr=1e-3), "experiments") != base
    norm = parts(Settings(), "normalize")
    assert parts(_with("normalize", log_every=7, checkpoint_every=9), "normalize") == norm
    assert parts(_with("normalize", warp_strength=0.01), "normalize") != norm
    assert parts(_with("preprocess", ae_size=64), "normalize") != norm
    # normalize's warm start enters its key as the pretrained model's content hash
    assert parts(_with("pretrain", iterations=9), "normalize") == norm
    assert parts(_with("pretrain", iterations=9), "pretrain") != parts(Settings(), "pretrain")
    # the resolved device type keys runs (a GPU's float paths differ); its index does not
    assert key_parts(Settings(), "normalize", "cuda:0") != norm
    assert key_parts(Settings(), "normalize", "cuda:1") == key_parts(Settings(), "normalize",
                                                                     "cuda")
    assert set(STAGE_SECTIONS) == {"pretrain", "normalize", "experiments"}


# ------------------------------------------------------------------------------ code fingerprint
def test_the_walk_follows_lazy_imports_and_package_inits() -> None:
    mods = stage_modules("pretrain")
    # pipelines/pretrain.py imports deepfn.normalizer.jobs inside a function
    assert {"pipelines/pretrain.py", "pipelines/__init__.py", "deepfn/__init__.py",
            "deepfn/normalizer/__init__.py", "deepfn/normalizer/jobs.py",
            "deepfn/normalizer/train.py", "deepfn/tracking/provenance.py"} <= set(mods)
    assert not any(m.startswith(("deepfn/au/", "deepfn/stats/")) for m in mods)
    exp = stage_modules("experiments")
    assert "deepfn/au/lenet.py" in exp and "deepfn/normalizer/model.py" not in exp
    assert code_fingerprint("experiments") != code_fingerprint("pretrain")
    assert re.fullmatch(r"[0-9a-f]{16}", code_fingerprint("experiments"))
    assert TAG_CODE_FINGERPRINT == "code_fingerprint"


def _toy_project(root: Path) -> Path:
    """pipelines/toy.py -> (lazily) pkg a -> relative import of b; c is never imported."""
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "__init__.py").write_text("")
    (root / "pipelines" / "toy.py").write_text(
        "import os\n\ndef main():\n    from deepfn.a import run\n    return run()\n")
    pkg = root / "deepfn"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from .core import run\n")
    (pkg / "a" / "core.py").write_text("from ..b import SCALE\n\ndef run():\n    return SCALE\n")
    (pkg / "b.py").write_text("SCALE = 2.0\n")
    (pkg / "c.py").write_text("UNUSED = 1\n")
    return root


def test_fingerprint_follows_the_files_a_stage_reaches(tmp_path: Path) -> None:
    a = _toy_project(tmp_path / "a")
    assert stage_modules("toy", a) == (
        "deepfn/__init__.py", "deepfn/a/__init__.py", "deepfn/a/core.py", "deepfn/b.py",
        "pipelines/__init__.py", "pipelines/toy.py")
    edited = shutil.copytree(a, tmp_path / "edited")
    (edited / "deepfn" / "b.py").write_text("SCALE = 3.0\n")
    unreached = shutil.copytree(a, tmp_path / "unreached")
    (unreached / "deepfn" / "c.py").write_text("UNUSED = 2\n")
    reverted = shutil.copytree(edited, tmp_path / "reverted")
    (reverted / "deepfn" / "b.py").write_text("SCALE = 2.0\n")
    fp = code_fingerprint("toy", a)
    assert code_fingerprint("toy", edited) != fp
    assert code_fingerprint("toy", unreached) == fp
    assert code_fingerprint("toy", reverted) == fp
    # no pipelines/<stage>.py (an installed package): every module of the package
    assert stage_modules("other", a) == ("deepfn/__init__.py", "deepfn/a/__init__.py",
                                         "deepfn/a/core.py", "deepfn/b.py", "deepfn/c.py")


# ------------------------------------------------------------------------------ dvc.yaml code deps
def _stages(dvc_yaml: Path) -> dict[str, dict]:
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {name: st.get("do", st) for name, st in stages.items()}


def uncovered_modules(stages: dict[str, dict], root: Path = REPO) -> list[str]:
    """One line per module a stage's entrypoint reaches that its deps do not cover."""
    out = []
    for name, st in stages.items():
        cmd = " ".join(st["cmd"].split())
        if not cmd.startswith(f"python -m pipelines.{name} "):
            out.append(f"dvc.yaml: stage {name!r} must run `python -m pipelines.{name} ...` "
                       f"(it runs `{cmd[:60]}`)")
            continue
        deps = [d.rstrip("/") for d in st.get("deps", [])]
        for mod in stage_modules(name, root):
            if not any(mod == d or mod.startswith(d + "/") for d in deps):
                out.append(f"dvc.yaml: stage {name!r} runs {mod} (reached from "
                           f"pipelines/{name}.py) but its deps do not cover it; add "
                           f"`- {mod}` to stages.{name}.deps")
    return out


def test_dvc_deps_cover_every_module_a_stage_runs() -> None:
    problems = uncovered_modules(_stages(REPO / "dvc.yaml"))
    assert not problems, "\n".join(problems)


def test_a_missing_dep_is_named_with_the_line_to_add() -> None:
    stages = _stages(REPO / "dvc.yaml")
    stages["tune"]["deps"] = [d for d in stages["tune"]["deps"] if d != "deepfn/au"]
    problems = uncovered_modules(stages)
    assert problems and all(p.startswith("dvc.yaml: stage 'tune' runs deepfn/au/")
                            for p in problems)
    assert any(p.endswith("add `- deepfn/au/lenet.py` to stages.tune.deps") for p in problems)
