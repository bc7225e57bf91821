"""Novelty (or learning) effects: does the treatment's effect change with time since exposure?

A new ranking often wins on its first days because it is new (users click the unfamiliar) and
the effect then decays, so a two-week average overstates the long-run gain. Grouping users'
days by the day since their first exposure and estimating the effect per group shows the
trend; :func:`effect_trend` fits a line through the per-day effects (weighted by their
precision) and tests its slope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from funnelrec.abtest.stats import Effect, mean_effect


@dataclass(frozen=True)
class Trend:
    """The per-day effects and the weighted slope of effect over days since exposure."""

    days: tuple[int, ...]
    effects: tuple[Effect, ...]
    slope: float
    slope_se: float
    p_value: float

    @property
    def novelty(self) -> bool:
        """A significant trend whose direction opposes the first day's effect: the effect
        fades (or reverses) as users get used to the change."""
        first = self.effects[0].diff
        return bool(self.p_value < 0.05 and first != 0 and np.sign(self.slope) != np.sign(first))


def effect_by_exposure_day(
    day: ArrayLike, treated: ArrayLike, value: ArrayLike, alpha: float = 0.05
) -> tuple[tuple[int, ...], tuple[Effect, ...]]:
    """The treatment effect on ``value`` for each day since first exposure (rows: user-days;
    ``treated`` bool; days with fewer than 2 users in an arm are left out)."""
    days, arm, y = np.asarray(day), np.asarray(treated, dtype=bool), np.asarray(value, float)
    kept_days: list[int] = []
    effects: list[Effect] = []
    for d in np.unique(days):
        here = days == d
        control, treatment = y[here & ~arm], y[here & arm]
        if control.size >= 2 and treatment.size >= 2:
            kept_days.append(int(d))
            effects.append(mean_effect(control, treatment, alpha))
    return tuple(kept_days), tuple(effects)


def effect_trend(day: ArrayLike, treated: ArrayLike, value: ArrayLike) -> Trend:
    """Weighted least squares of the per-day effects on the day index, and its slope's test.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> day = np.repeat(np.arange(10), 400); arm = np.tile([False, True], 2000)
        >>> y = rng.normal(size=4000) + arm * (1.0 - 0.1 * day)  # the gain fades
        >>> effect_trend(day, arm, y).novelty
        True
    """
    days, effects = effect_by_exposure_day(day, treated, value)
    if len(days) < 3:
        raise ValueError(f"need effects on at least 3 exposure days, got {len(days)}")
    x = np.asarray(days, dtype=float)
    y = np.array([e.diff for e in effects])
    w = 1.0 / np.maximum(np.array([e.se for e in effects]) ** 2, 1e-300)
    x_bar = (w * x).sum() / w.sum()
    y_bar = (w * y).sum() / w.sum()
    sxx = (w * (x - x_bar) ** 2).sum()
    slope = float((w * (x - x_bar) * (y - y_bar)).sum() / sxx)
    slope_se = float(np.sqrt(1.0 / sxx))  # known per-day variances: no residual rescaling
    p = float(2 * stats.norm.sf(abs(slope) / slope_se))
    return Trend(days, effects, slope, slope_se, p)


__all__ = ["Trend", "effect_by_exposure_day", "effect_trend"]
