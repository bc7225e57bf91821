"""Novelty: a fading effect is flagged, a steady one is not."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.abtest.novelty import effect_by_exposure_day, effect_trend


def user_days(rng: np.random.Generator, effect_on_day) -> tuple:
    day = np.repeat(np.arange(14), 600)
    arm = np.tile([False, True], day.size // 2)
    return day, arm, rng.normal(size=day.size) + arm * effect_on_day(day)


def test_a_fading_effect_is_novelty_and_a_steady_one_is_not() -> None:
    rng = np.random.default_rng(0)
    fading = effect_trend(*user_days(rng, lambda d: 0.4 * np.exp(-d / 3)))
    assert fading.novelty and fading.slope < 0 and fading.effects[0].significant()
    steady = effect_trend(*user_days(rng, lambda d: 0.2 + 0 * d))
    assert not steady.novelty


def test_days_without_both_arms_are_left_out_and_too_few_days_refused() -> None:
    day = np.array([0, 0, 0, 0, 1, 1, 1])
    arm = np.array([False, False, True, True, False, True, True])
    days, effects = effect_by_exposure_day(day, arm, np.arange(7.0))
    assert days == (0,) and effects[0].diff == 2.0
    with pytest.raises(ValueError, match="at least 3"):
        effect_trend(day, arm, np.arange(7.0))
