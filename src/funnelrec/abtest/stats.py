"""Per-arm comparisons with confidence intervals, CUPED, the sample-ratio check, sample sizes.

The unit of randomisation is the user, so every metric is analysed over per-user values:

* a **mean metric** (e.g. watch time per user): Welch's difference of means with a normal
  interval (the arms hold thousands of users);
* a **ratio metric** (e.g. CTR = clicks / impressions): the ratio of sums per arm, its variance
  by the delta method over the per-user (numerator, denominator) pairs (Deng et al., "Applying
  the Delta Method in Metric Analytics", KDD 2018); treating impressions as independent would
  understate the variance, since a user's impressions are correlated;
* **CUPED** (Deng et al., WSDM 2013): ``y - theta (x - mean x)`` with ``theta = cov(y, x) /
  var(x)`` from a pre-period covariate ``x``, pooled over arms; the variance shrinks by the
  factor ``1 - corr(y, x)^2``;
* the **sample-ratio mismatch** check: a chi-square test of the arms' user counts against the
  configured split; a tiny p-value means the assignment or the logging is broken and no
  effect estimate can be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

SRM_ALPHA = 1e-3
"""p-value below which a split is flagged: strict, because the check runs on every experiment
and a false alarm stops it."""


@dataclass(frozen=True)
class Effect:
    """Treatment minus control, with its standard error, interval and two-sided p-value.

    Attributes:
        control: the control arm's value (mean or ratio).
        treatment: the treatment arm's value.
        diff: ``treatment - control``.
        se: standard error of ``diff``.
        low: lower end of the ``1 - alpha`` interval.
        high: upper end.
        p_value: two-sided, against no difference.
    """

    control: float
    treatment: float
    diff: float
    se: float
    low: float
    high: float
    p_value: float

    @property
    def relative(self) -> float:
        """``diff / control`` (NaN when the control value is 0)."""
        return self.diff / self.control if self.control else float("nan")

    def significant(self) -> bool:
        """Whether the interval excludes 0."""
        return self.low > 0 or self.high < 0


def _effect(control: float, treatment: float, se: float, alpha: float) -> Effect:
    diff = treatment - control
    z = float(stats.norm.ppf(1 - alpha / 2))
    # No spread at all (se 0): the difference is certain.
    p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else float(diff == 0)
    return Effect(control, treatment, diff, se, diff - z * se, diff + z * se, p)


def mean_effect(control: ArrayLike, treatment: ArrayLike, alpha: float = 0.05) -> Effect:
    """Difference of per-user means (Welch's standard error, normal interval).

    Example:
        >>> e = mean_effect([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0])
        >>> e.diff, round(e.se, 4)
        (1.0, 0.9129)
    """
    a, b = _values(control), _values(treatment)
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    return _effect(float(a.mean()), float(b.mean()), se, alpha)


def ratio_and_variance(numerator: ArrayLike, denominator: ArrayLike) -> tuple[float, float]:
    """``sum(num) / sum(den)`` over users and its delta-method variance.

    ``Var(R) ~ (s_n^2 - 2 R s_nd + R^2 s_d^2) / (n mu_d^2)`` with the per-user sample
    (co)variances ``s`` and mean denominator ``mu_d``.
    """
    num, den = _values(numerator), _values(denominator)
    if num.shape != den.shape:
        raise ValueError(f"numerator {num.shape} and denominator {den.shape} differ in shape")
    mean_den = den.mean()
    if mean_den <= 0:
        raise ValueError("the denominator sums to zero: no ratio to estimate")
    ratio = float(num.sum() / den.sum())
    cov = np.cov(num, den, ddof=1)
    spread = cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]
    return ratio, float(max(spread, 0.0) / (num.size * mean_den**2))


def ratio_effect(
    control: tuple[ArrayLike, ArrayLike],
    treatment: tuple[ArrayLike, ArrayLike],
    alpha: float = 0.05,
) -> Effect:
    """Difference of a ratio metric (e.g. CTR) between arms, each ``(numerator, denominator)``
    per user, by the delta method.

    Example:
        >>> clicks_a, views_a = [1, 0, 2, 1], [10, 5, 10, 5]
        >>> e = ratio_effect((clicks_a, views_a), ([2, 1, 2, 1], [10, 5, 10, 5]))
        >>> round(e.control, 3), round(e.treatment, 3)
        (0.133, 0.2)
    """
    r_a, v_a = ratio_and_variance(*control)
    r_b, v_b = ratio_and_variance(*treatment)
    return _effect(r_a, r_b, float(np.sqrt(v_a + v_b)), alpha)


def cuped(values: ArrayLike, covariate: ArrayLike) -> NDArray[np.float64]:
    """``y - theta (x - mean x)``, ``theta = cov(y, x) / var(x)`` over all users of all arms
    (pooled, so the adjustment is the same for every arm and the effect stays unbiased).

    Example:
        >>> y = np.array([1.0, 2.0, 3.0, 4.0]); x = np.array([1.0, 2.0, 3.0, 5.0])
        >>> bool(cuped(y, x).var() < y.var())
        True
    """
    y, x = _values(values), _values(covariate)
    if y.shape != x.shape:
        raise ValueError(f"values {y.shape} and covariate {x.shape} differ in shape")
    var_x = x.var(ddof=1)
    if var_x == 0:
        return y.copy()  # a constant covariate explains nothing
    theta = np.cov(y, x, ddof=1)[0, 1] / var_x
    return y - theta * (x - x.mean())


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio-mismatch check: chi-square of observed against expected counts."""

    counts: tuple[int, ...]
    expected_shares: tuple[float, ...]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def sample_ratio(counts: ArrayLike, expected_shares: ArrayLike) -> SampleRatio:
    """Chi-square goodness of fit of the arms' user counts to the configured shares.

    Example:
        >>> sample_ratio([5200, 4800], [0.5, 0.5]).mismatch
        True
        >>> sample_ratio([5030, 4970], [0.5, 0.5]).mismatch
        False
    """
    observed = np.asarray(counts, dtype=np.float64)
    shares = np.asarray(expected_shares, dtype=np.float64)
    if observed.shape != shares.shape or observed.size < 2:
        raise ValueError("need one count and one expected share per arm (two arms or more)")
    expected = shares / shares.sum() * observed.sum()
    chi2, p = stats.chisquare(observed, expected)
    return SampleRatio(
        tuple(int(c) for c in observed), tuple(float(s) for s in shares), float(chi2), float(p)
    )


def users_per_arm(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm for a two-sided two-sample test to detect ``effect`` with ``power``.

    Example:
        >>> users_per_arm(sd=1.0, effect=0.1)
        1570
    """
    if effect == 0:
        raise ValueError("effect must be non-zero")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(np.ceil(2 * (z * sd / effect) ** 2))


def _values(x: ArrayLike) -> NDArray[np.float64]:
    out = np.asarray(x, dtype=np.float64).ravel()
    if out.size < 2:
        raise ValueError(f"need at least 2 users per arm, got {out.size}")
    if not np.isfinite(out).all():
        raise ValueError("per-user values must be finite")
    return out


__all__ = [
    "SRM_ALPHA",
    "Effect",
    "SampleRatio",
    "cuped",
    "mean_effect",
    "ratio_and_variance",
    "ratio_effect",
    "sample_ratio",
    "users_per_arm",
]
