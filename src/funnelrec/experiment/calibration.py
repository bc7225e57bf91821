"""The A/B statistics checked on the environment's own traffic.

One environment run gives the lists real users were served day by day and the ground truth
of how likely each shown item was to be clicked. Re-randomising those users into two arms
with a new salt and redrawing their clicks from the truth is one more experiment on the same
traffic, so hundreds of them cost seconds:

* **AA**: no arm differs; the share of significant results is the false-positive rate;
* **planted effect**: the treatment's click probabilities are multiplied by ``lift``; the
  true effect on clicks per user is known from the truth, so interval coverage is measured;
* **CUPED**: the variance shrink against ``1 - corr(clicks, pre-period clicks)^2``;
* **SRM**: treatment users dropped from the log until the split is 52/48, against fair splits;
* **peeking**: every day's cumulative look, naive p-value vs mSPRT;
* **interleaving vs A/B**: both arms' funnels serve the same users; team-draft preferences
  against per-user clicks under each funnel give the users each design needs at 80% power.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelrec.abtest.assignment import hash_unit
from funnelrec.abtest.interleaving import credit, interleaving_users, team_draft
from funnelrec.abtest.sequential import always_valid_p_values, first_rejection
from funnelrec.abtest.stats import cuped, mean_effect, sample_ratio, users_per_arm
from funnelrec.data.simulator.watch import WatchTruth
from funnelrec.experiment.environment import Environment, click_chance, served_items

SKEWED_SHARE = 0.48 / 0.52  # treatment users kept for a 52/48 split


@dataclass(frozen=True)
class Traffic:
    """Every served (user, day) list: ``user [N]`` (0-based), ``day [N]`` and the truth's
    click probability of each slot ``chance [N, k]`` (0 at padding)."""

    user: NDArray[np.int64]
    day: NDArray[np.int64]
    chance: NDArray[np.float64]

    @classmethod
    def of(cls, env: Environment) -> Traffic:
        users, days, chances = [], [], []
        for day, _, answer in env.served:
            users.append(answer.users)
            days.append(np.full(answer.users.shape[0], day))
            chances.append(answer.chance)  # what the users reacted with, fatigue included
        return cls(np.concatenate(users), np.concatenate(days), np.concatenate(chances))


def split(users: NDArray[np.int64], salt: int) -> NDArray[np.bool_]:
    """A fresh 50/50 assignment (True = treatment) by hashing each user with ``salt``."""
    return np.array([hash_unit(f"calibration:{salt}", str(u)) % 2 == 1 for u in users])


@dataclass(frozen=True)
class Calibration:
    """The measured rates (module docstring); ``reps`` experiments each."""

    reps: int
    aa_false_positive_rate: float
    coverage: float
    planted_lift: float
    cuped_variance_ratio: float
    cuped_predicted_ratio: float
    srm_flag_rate_52_48: float
    srm_flag_rate_fair: float
    peeking_naive_rate: float
    peeking_msprt_rate: float
    ab_users_80: int | None = None
    interleaving_users_80: int | None = None


def calibrate(
    env: Environment, pre_clicks: NDArray[np.float64], reps: int = 200, lift: float = 1.1,
    seed: int = 0,
) -> Calibration:  # fmt: skip
    """Run the re-randomised experiments on ``env``'s served traffic.

    Args:
        env: an environment after :meth:`~Environment.run`.
        pre_clicks: ``[U]`` each user's pre-period clicks (by 0-based user index).
        reps: experiments per check.
        lift: the planted multiplier of the treatment's click probabilities.
        seed: randomness of the redrawn clicks.
    """
    traffic = Traffic.of(env)
    rng = np.random.default_rng([seed, 0xCA1])
    users, inverse = np.unique(traffic.user, return_inverse=True)
    days = int(traffic.day.max()) + 1
    counts = {"aa": 0, "covered": 0, "srm_skew": 0, "srm_fair": 0, "naive": 0, "msprt": 0}
    for rep in range(reps):
        treated = split(users, rep)
        row_treated = treated[inverse]
        aa = _clicks_by_user_day(traffic, rng, np.ones(len(traffic.user)), users, inverse, days)
        total = aa.sum(axis=1)
        counts["aa"] += mean_effect(total[~treated], total[treated]).significant()
        counts["srm_fair"] += sample_ratio([(~treated).sum(), treated.sum()], [1, 1]).mismatch
        kept = treated & (rng.random(users.shape[0]) < SKEWED_SHARE)
        counts["srm_skew"] += sample_ratio([(~treated).sum(), kept.sum()], [1, 1]).mismatch
        looks = [
            mean_effect(aa[~treated, : d + 1].sum(1), aa[treated, : d + 1].sum(1))
            for d in range(days)
        ]
        counts["naive"] += any(look.p_value < 0.05 for look in looks)
        tau = 0.05 * abs(looks[-1].control) + 1e-9
        counts["msprt"] += first_rejection(always_valid_p_values(looks, tau)) is not None
        multiplier = np.where(row_treated, lift, 1.0)
        planted = _clicks_by_user_day(traffic, rng, multiplier, users, inverse, days).sum(axis=1)
        truth = _true_effect(traffic, lift, inverse, users.shape[0])
        effect = mean_effect(planted[~treated], planted[treated])
        counts["covered"] += effect.low <= truth <= effect.high
    y = _clicks_by_user_day(traffic, rng, np.ones(len(traffic.user)), users, inverse, days)
    y_total, x = y.sum(axis=1), pre_clicks[users]
    measured = float(cuped(y_total, x).var() / max(y_total.var(), 1e-300))
    predicted = float(1 - np.corrcoef(y_total, x)[0, 1] ** 2) if x.std() > 0 else 1.0
    return Calibration(
        reps,
        counts["aa"] / reps,
        counts["covered"] / reps,
        lift,
        measured,
        predicted,
        counts["srm_skew"] / reps,
        counts["srm_fair"] / reps,
        counts["naive"] / reps,
        counts["msprt"] / reps,
    )


def _clicks_by_user_day(
    traffic: Traffic,
    rng: np.random.Generator,
    multiplier: NDArray[np.float64],
    users: NDArray[np.int64],
    inverse: NDArray[np.int64],
    days: int,
) -> NDArray[np.float64]:
    """``[users, days]`` redrawn clicks (probabilities times ``multiplier`` per list row)."""
    chance = np.minimum(1.0, traffic.chance * multiplier[:, None])
    clicks = (rng.random(chance.shape) < chance).sum(axis=1)
    out = np.zeros((users.shape[0], days))
    np.add.at(out, (inverse, traffic.day), clicks)
    return out


def _true_effect(traffic: Traffic, lift: float, inverse: NDArray[np.int64], n: int) -> float:
    """Expected clicks per user with the lift minus without, averaged over the users."""
    gain = (np.minimum(1.0, traffic.chance * lift) - traffic.chance).sum(axis=1)
    return float(np.bincount(inverse, weights=gain, minlength=n).mean())


def interleaving_vs_ab(
    env: Environment, control: str, treatment: str, seed: int = 0
) -> tuple[int, int, float]:
    """Users each design needs at 80% power to find the better of two fitted arms (the arms'
    last fits), every user the run served replayed with their own number of served days:
    :func:`design_sample_sizes`."""
    users, days = np.unique(Traffic.of(env).user, return_counts=True)
    lists = {
        arm: served_items(env.recommenders[arm], users, env.config.k, env.now)
        for arm in (control, treatment)
    }
    rng = np.random.default_rng([seed, 0x17])
    return design_sample_sizes(env.truth, users, days, lists[control], lists[treatment], rng)


def design_sample_sizes(
    truth: WatchTruth,
    users: NDArray[np.int64],
    days: NDArray[np.int64],
    control: NDArray[np.int64],
    treatment: NDArray[np.int64],
    rng: np.random.Generator,
) -> tuple[int, int, float]:
    """``(A/B users in all, interleaving users, the treatment's share of preferences)`` at
    80% power, for users shown ``control`` or ``treatment`` lists (``[U, k]``, -1 padded) on
    each of their ``days``.

    Under A/B a user's clicks over their days come from one list or the other; under
    interleaving each day shows a team-draft merge of both and the user's summed credit gives
    one preference (returning users see more lists, so A/B pays for their spread in clicks
    while interleaving compares both lists on the same user)."""
    clicks = {
        name: _clicks_over_days(truth, users, lists, days, rng)
        for name, lists in (("control", control), ("treatment", treatment))
    }
    effect = float(clicks["treatment"].mean() - clicks["control"].mean())
    spread = float(np.sqrt((clicks["treatment"].var(ddof=1) + clicks["control"].var(ddof=1)) / 2))
    k = control.shape[1]
    prefs = np.zeros(users.shape[0], dtype=np.int64)
    for row, user in enumerate(users):
        a = [int(i) for i in control[row] if i >= 0]
        b = [int(i) for i in treatment[row] if i >= 0]
        total = 0  # team A's clicks minus team B's over the user's days
        for _ in range(int(days[row])):
            items, teams = team_draft(a, b, k, rng)
            shown = np.full((1, k), -1, dtype=np.int64)
            shown[0, : len(items)] = items
            clicked = _draw(truth, np.array([user]), shown, rng)[0, : len(items)]
            total += credit(teams, clicked)
        prefs[row] = -np.sign(total)  # +1: the treatment (team B) won this user
    decided = float(np.mean(prefs != 0))
    share = float(np.mean(prefs[prefs != 0] > 0)) if decided else 0.5
    ab = 2 * users_per_arm(spread, effect) if effect else -1
    il = interleaving_users(share, decided) if decided and share != 0.5 else -1
    return ab, il, share


def _clicks_over_days(
    truth: WatchTruth,
    users: NDArray[np.int64],
    items: NDArray[np.int64],
    days: NDArray[np.int64],
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """``[U]`` clicks of each user shown ``items`` on each of their ``days`` (redrawn)."""
    chance = click_chance(truth, users, items)
    return rng.binomial(days[:, None], chance).sum(axis=1).astype(np.float64)


def _draw(
    truth: WatchTruth, users: NDArray[np.int64], items: NDArray[np.int64], rng: np.random.Generator
) -> NDArray[np.bool_]:
    return rng.random(items.shape) < click_chance(truth, users, items)


__all__ = [
    "Calibration",
    "Traffic",
    "calibrate",
    "design_sample_sizes",
    "interleaving_vs_ab",
    "split",
]
