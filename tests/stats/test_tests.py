"""Golden values for deepfn.stats.tests: hand-computed cases and scipy on fixed inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from deepfn.stats.tests import adjust, bonferroni, cohens_d, compare, describe, hedges_g, holm

A, B = [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]  # means 4 and 2, variances 4 and 1


def test_compare_hand_case() -> None:
    c = compare(A, B)
    # pooled variance (2*4 + 2*1) / 4 = 2.5; se = sqrt(2.5 * (1/3 + 1/3)) = sqrt(5/3)
    t = 2 / math.sqrt(5 / 3)
    assert c.diff == 2.0 and c.df_student == 4
    assert c.t_student == pytest.approx(t, abs=1e-12) == pytest.approx(math.sqrt(12 / 5))
    # Student's t with 4 df has a closed-form CDF: F(t) = 1/2 + 3/8 u (1 - t^2 / (12 q)),
    # q = 1 + t^2/4, u = t / sqrt(q)  ->  two-sided p = 0.196261...
    q = 1 + t * t / 4
    p = 1 - 0.75 * (t / math.sqrt(q)) * (1 - t * t / (12 * q))
    assert c.p_student == pytest.approx(p, abs=1e-12)
    assert c.p_student == pytest.approx(0.196261178, abs=1e-9)
    # Welch: equal n, so t is the same; df = (5/3)^2 / ((4/3)^2/2 + (1/3)^2/2) = 50/17
    assert c.t_welch == pytest.approx(t, abs=1e-12)
    assert c.df_welch == pytest.approx(50 / 17, abs=1e-12)
    # CI: 2 +/- t_.975,4 * sqrt(5/3), t_.975,4 = 2.776445 (tables)
    half = 2.7764451052 * math.sqrt(5 / 3)
    assert (c.diff_ci_low, c.diff_ci_high) == pytest.approx((2 - half, 2 + half), abs=1e-8)
    # d = 2 / sqrt(2.5); J(4) = G(2) / (sqrt(2) G(3/2)) = sqrt(2/pi)
    assert c.cohens_d == pytest.approx(2 / math.sqrt(2.5), abs=1e-12)
    assert c.hedges_g == pytest.approx(2 / math.sqrt(2.5) * math.sqrt(2 / math.pi), abs=1e-12)


def test_compare_equals_scipy_on_fixed_inputs() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(55, 6, 37), rng.normal(60, 9, 23)
    c = compare(a, b, confidence=0.95)
    for equal_var, t, df, p, lo, hi in (
            (True, c.t_student, c.df_student, c.p_student, c.diff_ci_low, c.diff_ci_high),
            (False, c.t_welch, c.df_welch, c.p_welch, c.diff_ci_low_welch,
             c.diff_ci_high_welch)):
        ref = stats.ttest_ind(a, b, equal_var=equal_var)
        ci = ref.confidence_interval(0.95)
        assert (t, df, p) == pytest.approx((ref.statistic, ref.df, ref.pvalue), rel=1e-12)
        assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert c.diff == pytest.approx(a.mean() - b.mean())
    assert c.p_welch != pytest.approx(c.p_student)  # unequal variances: the tests differ


def test_describe_equals_scipy() -> None:
    x = np.array([50.0, 60.0, 55.0, 65.0])
    s = describe(x, 0.95)
    assert (s.n, s.mean) == (4, 57.5)
    assert s.sd == pytest.approx(math.sqrt(125 / 3))
    assert s.se == pytest.approx(stats.sem(x))
    lo, hi = stats.t.interval(0.95, 3, loc=57.5, scale=stats.sem(x))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))


def test_hedges_g_close_to_the_usual_approximation() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 20), rng.normal(0.5, 1, 25)
    approx = cohens_d(a, b) * (1 - 3 / (4 * (20 + 25 - 2) - 1))
    assert hedges_g(a, b) == pytest.approx(approx, rel=1e-3)


def test_too_few_observations_give_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare([0.5], [0.4, 0.6])
        s = describe([0.5])
        empty = describe([])
    assert c.n_a == 1 and c.diff == pytest.approx(0.0)
    assert all(math.isnan(v) for v in (c.p_student, c.p_welch, c.cohens_d, c.hedges_g,
                                       c.diff_ci_low))
    assert s.n == 1 and s.mean == 0.5 and math.isnan(s.se)
    assert empty.n == 0 and math.isnan(empty.mean)


def test_holm_hand_case() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04)
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert bonferroni(p) == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    # NaN (an n/a test) is not part of the family and stays NaN
    out = holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_adjust_methods() -> None:
    p = np.array([0.01, 0.04])
    assert adjust(p, "none") == pytest.approx(p)
    assert adjust(p, "holm") == pytest.approx([0.02, 0.04])
    assert adjust(p, "bonferroni") == pytest.approx([0.02, 0.08])
    with pytest.raises(ValueError, match="correction 'bh'"):
        adjust(p, "bh")
