"""Users: demographics, demographic-correlated sparse interests, sign-up times and activity.

Users are indexed in sign-up order (``signup_at`` ascending). Each demographic group
(age bucket x gender x region) has its own category prior, a log-linear tilt of the global
category shares; a user's interests are a sparse Dirichlet draw around their group's prior, so
group popularity predicts a cold user's clicks better than global popularity does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelrec.data.simulator.catalog import Catalog
from funnelrec.data.simulator.config import DAY_S, SimulatorConfig

AGE_BUCKETS = np.array([18, 25, 35, 45, 55, 65], dtype=np.int32)
_AGE_SHARE = np.array([0.15, 0.28, 0.24, 0.16, 0.10, 0.07])
GENDERS = ("f", "m", "u")
_GENDER_SHARE = np.array([0.48, 0.47, 0.05])
_PRE_START_SIGNUP_DAYS = 730.0  # early users signed up up to two years before the span
_LATE_SIGNUP_SPAN = 0.9  # late users sign up in the first 90% of the span
_MIN_INTEREST = 1e-12


@dataclass(frozen=True, slots=True)
class Population:
    """Per-user attributes (``U`` users, ``C`` categories, ``G`` demographic groups).

    Attributes:
        age: ``[U]`` int32 age bucket lower bound (18, 25, 35, 45, 55, 65).
        gender: ``[U]`` int8 index into :data:`GENDERS`.
        region: ``[U]`` int16 region index.
        group: ``[U]`` int32 demographic group ``(age_bucket * 3 + gender) * R + region``.
        signup_at: ``[U]`` int64 sign-up time (unix s), ascending.
        cold: ``[U]`` bool, listed but never active.
        late: ``[U]`` bool, signed up during the span.
        window_start: ``[U]`` int64 earliest possible session start.
        activity: ``[U]`` float64 relative session rate (0 for cold users).
        interest: ``[U, C]`` float64 initial category interests (rows sum to 1).
        favourite: ``[U, C]`` int32 favourite sub-topic (0..S-1) within each category.
        key: ``[U]`` uint64 seed of each user's random stream.
        group_cum: ``[G, C]`` float64 cumulative category prior of each group.
    """

    age: NDArray[np.int32]
    gender: NDArray[np.int8]
    region: NDArray[np.int16]
    group: NDArray[np.int32]
    signup_at: NDArray[np.int64]
    cold: NDArray[np.bool_]
    late: NDArray[np.bool_]
    window_start: NDArray[np.int64]
    activity: NDArray[np.float64]
    interest: NDArray[np.float64]
    favourite: NDArray[np.int32]
    key: NDArray[np.uint64]
    group_cum: NDArray[np.float64]

    @property
    def n_users(self) -> int:
        return int(self.age.shape[0])


def _group_priors(
    rng: np.random.Generator, config: SimulatorConfig, base: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``[G, C]`` category prior per demographic group: softmax(log base + tilts)."""
    n_cat, n_reg = config.n_categories, config.n_regions
    sd = config.demographic_strength
    age_fx = rng.normal(0.0, sd, size=(AGE_BUCKETS.shape[0], n_cat))
    gender_fx = rng.normal(0.0, sd, size=(len(GENDERS), n_cat))
    region_fx = rng.normal(0.0, sd, size=(n_reg, n_cat))
    logits = (
        np.log(base)[None, None, None, :]
        + age_fx[:, None, None, :]
        + gender_fx[None, :, None, :]
        + region_fx[None, None, :, :]
    ).reshape(-1, n_cat)
    logits -= logits.max(axis=1, keepdims=True)
    prior = np.exp(logits)
    return prior / prior.sum(axis=1, keepdims=True)


def build_population(
    rng: np.random.Generator, config: SimulatorConfig, catalog: Catalog
) -> Population:
    """Draw users: demographics, group priors, sparse interests, sign-ups, activity, keys.

    Args:
        rng: the simulation's generator (advanced in place).
        config: the simulator config.
        catalog: the item catalogue (its category shares and sub-topic shares).

    Returns:
        The :class:`Population` of ``config.n_users`` users, in sign-up order.
    """
    n, n_cat = config.n_users, config.n_categories
    start, end = config.start_timestamp, config.end_timestamp
    age_idx = rng.choice(AGE_BUCKETS.shape[0], size=n, p=_AGE_SHARE)
    gender = rng.choice(len(GENDERS), size=n, p=_GENDER_SHARE).astype(np.int8)
    region_share = 1.0 / np.arange(1, config.n_regions + 1) ** 0.8
    region = rng.choice(config.n_regions, size=n, p=region_share / region_share.sum())
    group = ((age_idx * len(GENDERS) + gender) * config.n_regions + region).astype(np.int32)

    prior = _group_priors(rng, config, catalog.category_share)
    alpha = np.maximum(config.interest_concentration * prior[group], 1e-3)
    interest = rng.standard_gamma(alpha) + _MIN_INTEREST * prior[group]
    interest /= interest.sum(axis=1, keepdims=True)
    local_u = rng.random((n, n_cat))
    favourite = (local_u[:, :, None] >= catalog.subtopic_cum[None, :, :]).sum(axis=2)
    favourite = np.minimum(favourite, config.n_subtopics - 1).astype(np.int32)

    late = rng.random(n) < config.late_signup_fraction
    span = end - start
    signup_at = np.where(
        late,
        start + (rng.random(n) * _LATE_SIGNUP_SPAN * span).astype(np.int64),
        start - 1 - (rng.random(n) * _PRE_START_SIGNUP_DAYS * DAY_S).astype(np.int64),
    )
    cold = np.zeros(n, dtype=bool)
    cold[rng.choice(n, size=int(np.floor(n * config.cold_user_fraction)), replace=False)] = True
    activity = np.where(cold, 0.0, rng.lognormal(0.0, config.activity_sigma, size=n))
    key = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)

    order = np.argsort(signup_at, kind="stable")
    signup_at = signup_at[order]
    late = late[order]
    window_start = np.where(late, signup_at + 60, start).astype(np.int64)
    group_cum = np.cumsum(prior, axis=1)
    group_cum[:, -1] = 1.0
    return Population(
        age=AGE_BUCKETS[age_idx[order]],
        gender=gender[order],
        region=region[order].astype(np.int16),
        group=group[order],
        signup_at=signup_at.astype(np.int64),
        cold=cold[order],
        late=late,
        window_start=window_start,
        activity=activity[order],
        interest=interest[order],
        favourite=favourite[order],
        key=key[order],
        group_cum=group_cum,
    )
