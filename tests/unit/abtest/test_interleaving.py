"""Team-draft interleaving: a fair merge, and it needs fewer users than an A/B test to find a
known-better ranker."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.abtest.interleaving import (
    TEAM_A,
    TEAM_B,
    interleaving_users,
    preference,
    preference_test,
    team_draft,
)
from funnelrec.abtest.stats import users_per_arm


def test_team_draft_is_a_fair_duplicate_free_merge() -> None:
    rng = np.random.default_rng(0)
    a, b = list(range(10)), [9, 3, 8, 1, 7, 0, 6, 2, 5, 4]
    for _ in range(50):
        items, teams = team_draft(a, b, 6, rng)
        assert len(items) == len(set(items)) == 6
        assert abs(teams.count(TEAM_A) - teams.count(TEAM_B)) <= 1
        for at, (item, team) in enumerate(zip(items, teams, strict=True)):
            ranking = a if team == TEAM_A else b
            # each team adds its best item not already shown
            assert item == next(x for x in ranking if x not in items[:at])
    short, _ = team_draft([1], [1], 5, rng)
    assert short == [1]  # both rankings exhausted


def test_identical_rankers_give_no_preference() -> None:
    rng = np.random.default_rng(1)
    prefs = []
    for _ in range(3000):
        _, teams = team_draft(list(range(10)), list(range(10)), 10, rng)
        clicked = rng.random(10) < 0.3 / (1 + np.arange(10))
        prefs.append(preference(teams, clicked))
    assert preference_test(prefs).p_value > 0.01


def simulate(rng: np.random.Generator, n_users: int, k: int = 10):
    """Users with item relevance; ranker B sorts by relevance plus little noise, A by more."""
    per_user_ab, prefs = [], []
    bias = 1.0 / (1.0 + np.arange(k))
    for _ in range(n_users):
        relevance = rng.random(50) ** 3
        activity = rng.lognormal(0.0, 1.0)  # user-to-user spread the A/B test must average out
        a = list(np.argsort(-(relevance + rng.normal(0, 0.25, 50))))
        b = list(np.argsort(-(relevance + rng.normal(0, 0.15, 50))))
        chance = activity * bias

        def click(ranking: list, chance=chance, relevance=relevance) -> np.ndarray:
            return rng.random(k) < np.minimum(1.0, chance * relevance[ranking[:k]])

        per_user_ab.append((click(a).sum(), click(b).sum()))
        items, teams = team_draft(a, b, k, rng)
        prefs.append(preference(teams, click(items)))
    return np.array(per_user_ab, dtype=float), np.array(prefs)


def test_interleaving_needs_fewer_users_than_ab_for_a_known_better_ranker() -> None:
    ab, prefs = simulate(np.random.default_rng(2), 3000)
    effect = ab[:, 1].mean() - ab[:, 0].mean()
    assert effect > 0  # B is better
    ab_users = users_per_arm(sd=ab.std(ddof=1), effect=effect) * 2  # two arms
    decided = np.mean(prefs != 0)
    share_b = np.mean(prefs[prefs != 0] < 0)
    il_users = interleaving_users(share_b, decided)
    assert il_users < ab_users / 2
    assert preference_test(-prefs).p_value < 0.01  # B wins, seen on these 3,000 users


def test_sample_size_input_is_checked() -> None:
    with pytest.raises(ValueError):
        interleaving_users(0.5, 0.4)
    assert preference_test([0, 0]).p_value == 1.0
