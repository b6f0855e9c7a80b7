"""Statistical tests (not unit tests): the paper's t-test plus what we report beyond it.

The paper (§4.3) compares conditions with a two-sample **Student's t-test** (equal variances,
``scipy.stats.ttest_ind(equal_var=True)``), two-sided, significant at p < 0.05.  Beyond the
paper, :func:`compare` also gives Welch's test, Cohen's d, Hedges' g and confidence intervals of
both means and of the difference, and :func:`adjust` corrects a family of p-values (Holm by
default; scipy's ``false_discovery_control`` is Benjamini-Hochberg, not Holm).

Every function takes plain sequences of numbers and returns NaN (never raises) where fewer than
two observations per sample make a quantity undefined.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats

__all__ = ["Summary", "Comparison", "describe", "compare", "cohens_d", "hedges_g", "holm",
           "bonferroni", "adjust", "CORRECTIONS"]

CORRECTIONS = ("holm", "bonferroni", "none")
NAN = float("nan")


def _array(x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    finite: np.ndarray = a[np.isfinite(a)]
    return finite


@dataclass(frozen=True)
class Summary:
    """Mean, SD (ddof=1), standard error and a t-based CI of the mean of one sample."""

    n: int
    mean: float
    sd: float
    se: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def describe(x: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Summary:
    a = _array(x)
    n = a.size
    if n == 0:
        return Summary(0, NAN, NAN, NAN, NAN, NAN)
    mean = float(a.mean())
    if n < 2:
        return Summary(1, mean, NAN, NAN, NAN, NAN)
    sd = float(a.std(ddof=1))
    se = sd / np.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Summary(n, mean, sd, float(se), mean - half, mean + half)


def cohens_d(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """(mean_a - mean_b) / pooled SD, the pooled SD with n_a + n_b - 2 degrees of freedom."""
    a, b = _array(a), _array(b)
    if a.size < 2 or b.size < 2:
        return NAN
    df = a.size + b.size - 2
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df)
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else NAN


def hedges_g(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cohen's d times the exact small-sample correction J(df) = G(df/2) / (sqrt(df/2) G((df-1)/2)).

    (J is close to the usual approximation 1 - 3 / (4 df - 1).)
    """
    d = cohens_d(a, b)
    df = _array(a).size + _array(b).size - 2
    if not np.isfinite(d):
        return NAN
    j = np.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / np.sqrt(df / 2)
    return float(d * j)


@dataclass(frozen=True)
class Comparison:
    """Sample a vs sample b: the difference a - b, Student's and Welch's tests, effect sizes."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    t_student: float
    df_student: float
    p_student: float
    diff_ci_low: float  # Student (pooled variance) CI of the difference
    diff_ci_high: float
    t_welch: float
    df_welch: float
    p_welch: float
    diff_ci_low_welch: float
    diff_ci_high_welch: float
    cohens_d: float
    hedges_g: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _t_ci(diff: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    if not (np.isfinite(se) and np.isfinite(df) and df > 0):
        return NAN, NAN
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return diff - half, diff + half


def compare(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
            confidence: float = 0.95) -> Comparison:
    """Two-sided two-sample tests of mean(a) == mean(b); NaN where n_a < 2 or n_b < 2."""
    a, b = _array(a), _array(b)
    na, nb = a.size, b.size
    mean_a = float(a.mean()) if na else NAN
    mean_b = float(b.mean()) if nb else NAN
    diff = mean_a - mean_b
    if na < 2 or nb < 2:
        return Comparison(na, nb, mean_a, mean_b, diff, *([NAN] * 12))
    va, vb = a.var(ddof=1), b.var(ddof=1)
    with warnings.catch_warnings():  # zero variance: scipy warns and returns NaN, as we want
        warnings.simplefilter("ignore", RuntimeWarning)
        student = stats.ttest_ind(a, b, equal_var=True)
        welch = stats.ttest_ind(a, b, equal_var=False)
    df_s = na + nb - 2
    se_s = np.sqrt(((na - 1) * va + (nb - 1) * vb) / df_s * (1 / na + 1 / nb))
    se_w = np.sqrt(va / na + vb / nb)
    df_w = float(welch.df) if se_w > 0 else NAN
    return Comparison(
        na, nb, mean_a, mean_b, diff,
        float(student.statistic), float(df_s), float(student.pvalue),
        *_t_ci(diff, float(se_s), df_s, confidence),
        float(welch.statistic), df_w, float(welch.pvalue),
        *_t_ci(diff, float(se_w), df_w, confidence),
        cohens_d(a, b), hedges_g(a, b))


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j)).

    NaN entries are left out of the family (m counts the finite p-values) and stay NaN.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(stepped, 1.0)
    return out


def bonferroni(p: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    corrected: np.ndarray = np.minimum(p * np.isfinite(p).sum(), 1.0)
    return corrected


def adjust(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Correct a family of p-values: ``holm``, ``bonferroni`` or ``none``."""
    if method == "holm":
        return holm(p)
    if method == "bonferroni":
        return bonferroni(p)
    if method == "none":
        return np.asarray(p, dtype=float).copy()
    raise ValueError(f"correction {method!r} is not one of {', '.join(CORRECTIONS)}")
