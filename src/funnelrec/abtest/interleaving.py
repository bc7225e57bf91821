"""Team-draft interleaving (Radlinski, Kurup & Joachims, CIKM 2008) and its preference test.

Instead of splitting users between rankers A and B, every user sees one list merged from both:
each round a coin decides which ranker picks first, then each adds its best item not yet in
the list, and the item remembers its team. A user's clicks credit the teams; the user prefers
the ranker whose items got more clicks (a tie: no preference). Because both rankers are judged
on the same user, the user-to-user variance that dominates an A/B test cancels out, so far
fewer users are needed (Chapelle et al., "Large-scale validation and analysis of interleaved
search evaluation", TOIS 2012): :func:`interleaving_users` vs
:func:`~funnelrec.abtest.stats.users_per_arm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

TEAM_A, TEAM_B = 0, 1


def team_draft(
    ranking_a: Sequence[int], ranking_b: Sequence[int], k: int, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """The interleaved top-``k`` and each item's team (``TEAM_A`` / ``TEAM_B``).

    Example:
        >>> items, teams = team_draft([1, 2, 3], [3, 2, 1], 3, np.random.default_rng(0))
        >>> sorted(items), sorted(teams) in ([0, 0, 1], [0, 1, 1])
        ([1, 2, 3], True)
    """
    chosen: list[int] = []
    teams: list[int] = []
    seen: set[int] = set()
    picks = {TEAM_A: 0, TEAM_B: 0}
    sources = {TEAM_A: list(ranking_a), TEAM_B: list(ranking_b)}
    position = {TEAM_A: 0, TEAM_B: 0}

    def pick(team: int) -> bool:
        ranking = sources[team]
        while position[team] < len(ranking) and ranking[position[team]] in seen:
            position[team] += 1
        if position[team] == len(ranking):
            return False
        item = ranking[position[team]]
        seen.add(item)
        chosen.append(item)
        teams.append(team)
        picks[team] += 1
        return True

    while len(chosen) < k:
        # The team with fewer picks goes next; a coin breaks ties (the original rule).
        if picks[TEAM_A] != picks[TEAM_B]:
            order = [TEAM_A, TEAM_B] if picks[TEAM_A] < picks[TEAM_B] else [TEAM_B, TEAM_A]
        else:
            order = [TEAM_A, TEAM_B] if rng.random() < 0.5 else [TEAM_B, TEAM_A]
        if not any(pick(team) for team in order):
            break  # both rankings exhausted
    return chosen, teams


def credit(teams: ArrayLike, clicked: ArrayLike) -> int:
    """Clicks on team A's items minus clicks on team B's (summed over a user's lists, its
    sign is the user's preference)."""
    team = np.asarray(teams)
    hit = np.asarray(clicked, dtype=bool)
    return int(hit[team == TEAM_A].sum()) - int(hit[team == TEAM_B].sum())


def preference(teams: ArrayLike, clicked: ArrayLike) -> int:
    """+1 when team A's items got more clicks, -1 when B's did, 0 for a tie."""
    return int(np.sign(credit(teams, clicked)))


@dataclass(frozen=True)
class InterleavingResult:
    """Preferences over users: A's share of the decided ones, its interval and p-value."""

    wins_a: int
    wins_b: int
    ties: int
    share_a: float
    low: float
    high: float
    p_value: float


def preference_test(preferences: ArrayLike, alpha: float = 0.05) -> InterleavingResult:
    """Binomial test of A's share among users with a preference (ties left out).

    Example:
        >>> r = preference_test([1] * 70 + [-1] * 30 + [0] * 50)
        >>> r.wins_a, r.ties, r.p_value < 0.001
        (70, 50, True)
    """
    prefs = np.asarray(preferences)
    wins_a, wins_b = int((prefs > 0).sum()), int((prefs < 0).sum())
    decided = wins_a + wins_b
    if decided == 0:
        return InterleavingResult(0, 0, int(prefs.size), 0.5, 0.0, 1.0, 1.0)
    test = stats.binomtest(wins_a, decided, 0.5)
    interval = test.proportion_ci(confidence_level=1 - alpha)
    return InterleavingResult(
        wins_a,
        wins_b,
        int(prefs.size - decided),
        wins_a / decided,
        float(interval.low),
        float(interval.high),
        float(test.pvalue),
    )


def interleaving_users(
    share_a: float, decided_rate: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Users needed for the preference test to detect A's share of decided users ``share_a``
    (!= 0.5) when a share ``decided_rate`` of users express a preference.

    Example:
        >>> interleaving_users(0.55, 0.5)
        1566
    """
    if share_a == 0.5 or not 0 < share_a < 1 or not 0 < decided_rate <= 1:
        raise ValueError("need 0 < share_a < 1, share_a != 0.5 and 0 < decided_rate <= 1")
    z_a, z_b = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    spread = z_a * 0.5 + z_b * np.sqrt(share_a * (1 - share_a))
    decided = (spread / (share_a - 0.5)) ** 2
    return int(np.ceil(decided / decided_rate))


__all__ = [
    "TEAM_A",
    "TEAM_B",
    "InterleavingResult",
    "credit",
    "interleaving_users",
    "preference",
    "preference_test",
    "team_draft",
]
