"""Subject ids, per-subject seeds and the roster table (dataset, gender, skin, expressivity)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from deepfn.data.corpus import SUBJECT_COLUMNS
from deepfn.errors import DeepFNError

__all__ = ["parse_subject", "subject_rng", "roster_metadata", "SKIN_BLOCKS"]

_BP4D = re.compile(r"^([FM])(\d{3})$")
_DISFA = re.compile(r"^SN(\d{3})$")

# Skin categories are allocated in blocks of five consecutive ids per (dataset, gender), one
# block composition per parity, so group sizes are guaranteed and adding subjects never changes
# anybody else's skin type.  BP4D: 10 women -> 3 lighter, 5 darker, 2 medium; 10 men -> 5, 3, 2
# (darker skin somewhat more often female); DISFA: 2 lighter, 2 darker, 1 medium per block.
SKIN_BLOCKS: dict[tuple[str, str], tuple[str, str]] = {
    ("bp4d", "F"): ("LLDDM", "LDDDM"),
    ("bp4d", "M"): ("LLDDM", "LLLDM"),
    ("disfa", "*"): ("LLDDM", "LLDDM"),
}
_TYPES = {"L": ((1, 2), (0.4, 0.6)), "M": ((3, 4), (0.5, 0.5)), "D": ((5, 6), (0.6, 0.4))}
_DISFA_FEMALE = {"L": 0.33, "M": 0.45, "D": 0.56}  # about 12/27 female overall


def parse_subject(subject: str) -> tuple[str, str | None, int]:
    """``(dataset, gender or None, number)`` of a subject id; unknown patterns raise."""
    m = _BP4D.match(subject)
    if m:
        return "bp4d", m.group(1), int(m.group(2))
    m = _DISFA.match(subject)
    if m:
        return "disfa", None, int(m.group(1))
    raise DeepFNError(f"subject id {subject!r} is not a synthetic roster id; allowed: F001.., "
                      "M001.. (BP4D-like) or SN001.. (DISFA-like), three digits")


def _key(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def subject_rng(seed: int, subject: str, stream: str) -> np.random.Generator:
    """Independent generator per (seed, subject, stream): rosters can grow without changing
    the subjects already in them."""
    if seed < 0:
        raise DeepFNError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([seed, _key(subject, stream)]))


def _category(seed: int, dataset: str, gender: str, number: int) -> str:
    block, pos = divmod(max(number, 1) - 1, 5)
    comp = SKIN_BLOCKS[(dataset, gender)][block % 2]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _key(dataset, gender, block)]))
    return comp[rng.permutation(5)[pos]]


def roster_metadata(subjects: Sequence[str], *, seed: int) -> pd.DataFrame:
    """The subjects table (``corpus.SUBJECT_COLUMNS``) of a synthetic roster, indexed by id.

    BP4D-like ids ``F001``/``M001`` take their gender from the prefix, DISFA-like ``SN001``
    draw it.  Skin types are allocated in balanced blocks (about 40 % lighter I-II, 40 % darker
    V-VI, 20 % medium III-IV per dataset); expressivity is lognormal (median 1).
    """
    subjects = list(subjects)
    seen: set[str] = set()
    rows = []
    for sid in subjects:
        if sid in seen:
            raise DeepFNError(f"subject id {sid!r} is listed twice in the roster")
        seen.add(sid)
        dataset, gender, number = parse_subject(sid)
        rng = subject_rng(seed, sid, "metadata")
        cat = _category(seed, dataset, gender or "*", number)
        u_gender, u_type = rng.random(), rng.random()
        expressivity = float(np.exp(rng.normal(0.0, 0.35)))
        if gender is None:
            gender = "F" if u_gender < _DISFA_FEMALE[cat] else "M"
        types, probs = _TYPES[cat]
        skin = types[0] if u_type < probs[0] else types[1]
        rows.append((sid, dataset, gender, skin, round(expressivity, 4)))
    df = pd.DataFrame(rows, columns=list(SUBJECT_COLUMNS))
    df["skin_type"] = df["skin_type"].astype(int)
    df["expressivity"] = df["expressivity"].astype(float)
    return df.set_index("subject", drop=False)
