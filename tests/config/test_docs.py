"""docs/params.md is generated from the settings and must be current and complete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from deepfn.config import docs
from deepfn.config.profiles import PROFILES

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "params.md"


def _keys(node: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _keys(value, dotted + ".")
        else:
            yield dotted


def test_params_md_is_current() -> None:
    expected = docs.render(REPO / "params.yaml")
    assert PAGE.read_text() == expected, (
        "docs/params.md is out of date with deepfn/config/settings.py, profiles.py or "
        "params.yaml; run make params-doc")


def test_every_params_yaml_key_is_documented() -> None:
    page = PAGE.read_text()
    keys = list(_keys(yaml.safe_load((REPO / "params.yaml").read_text())))
    assert len(keys) > 50  # the walk reached the sections
    missing = [k for k in keys if f"| `{k}` |" not in page]
    assert not missing, f"keys of params.yaml missing from docs/params.md: {missing}"


def test_every_profile_key_is_documented_with_its_value() -> None:
    rows = {r["key"].strip("`"): r for r in docs.field_rows({})}
    for profile, sections in PROFILES.items():
        for section, values in sections.items():
            for key, value in values.items():
                row = rows[f"{section}.{key}"]
                assert row[profile] == f"`{docs._fmt(value)}`", (profile, section, key)


def test_every_settings_field_has_a_description() -> None:
    assert docs.missing_descriptions() == [], (
        "settings fields without description= (deepfn/config/settings.py): "
        f"{docs.missing_descriptions()}")


def test_rows_carry_type_range_and_fallback() -> None:
    rows = {r["key"].strip("`"): r for r in docs.field_rows({"normalize": {"lr": None}})}
    lr = rows["normalize.lr"]
    assert lr["type"] == "float, > 0, ≤ 1" and lr["fallback"] == "`5e-05`"
    assert (lr["smoke"], lr["paper"], lr["params.yaml"]) == ("`0.001`", "`5e-05`", "`null`")
    assert rows["preprocess.ae_size"]["type"] == "int, ≥ 32, ≤ 256, multiple of 32"
    assert rows["normalize.finetune"]["type"] == "`all` \\| `decoder_subject`"
    assert rows["synthesize.bp4d_root"]["type"] == "str or `null`"
    assert rows["stats.alpha"]["params.yaml"] == "(absent)"


def test_main_writes_the_page_atomically(tmp_path: Path) -> None:
    out = tmp_path / "params.md"
    out.write_text("stale")
    docs.main(["--params", str(REPO / "params.yaml"), "--out", str(out)])
    assert out.read_text() == docs.render(REPO / "params.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["params.md"]
