"""The session budget: how many sessions each user has and how many slates each session shows.

The target row count fixes the number of slates (``target / expected rows per slate``). Sessions
are shared among active users in proportion to ``activity x active window``, every active user
getting at least one; session lengths are geometric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from funnelrec.data.simulator.config import SimulatorConfig
from funnelrec.data.simulator.population import Population

# Mean relevance factor of a shown item under the default model, measured on default configs;
# only used to turn the row target into a number of slates.
_MEAN_RELEVANCE = 0.147
_MAX_SESSIONS_PER_HOUR = 0.5


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """Sessions grouped by user (``U`` users, ``N`` sessions).

    Attributes:
        user_ptr: ``[U + 1]`` int64 offsets of each user's sessions.
        steps: ``[N]`` int32 slates shown in each session.
        slot_ptr: ``[N + 1]`` int64 offsets of each session's impression slots
            (``steps * slate_size`` each).
    """

    user_ptr: NDArray[np.int64]
    steps: NDArray[np.int32]
    slot_ptr: NDArray[np.int64]

    @property
    def n_sessions(self) -> int:
        return int(self.steps.shape[0])


def position_bias(config: SimulatorConfig) -> NDArray[np.float64]:
    """``[slate_size]`` examination factor ``(1 + position) ** -position_bias``."""
    return examination(config.slate_size, config.position_bias)


def examination(slate_size: int, exponent: float) -> NDArray[np.float64]:
    """``[slate_size]`` examination factor ``(1 + position) ** -exponent`` (the one position
    curve rule; scenarios use it with their own exponent)."""
    positions = np.arange(slate_size, dtype=np.float64)
    return np.power(1.0 + positions, -exponent, dtype=np.float64)


def expected_rows_per_slate(config: SimulatorConfig) -> float:
    """Approximate rows one slate produces: its impressions plus the funnel events."""
    ctr = min(0.95, config.click_scale * _MEAN_RELEVANCE * float(position_bias(config).mean()))
    per_click = 1.0 + config.cart_rate * (1.0 + config.order_rate)
    return config.slate_size * (1.0 + ctr * per_click)


def plan_sessions(
    rng: np.random.Generator, config: SimulatorConfig, population: Population
) -> SessionPlan:
    """Draw sessions per user and slates per session so total rows approximate the target.

    Args:
        rng: the simulation's generator (advanced in place).
        config: the simulator config.
        population: the users (activity, cold flags, active windows).

    Returns:
        The :class:`SessionPlan`.
    """
    n_slates = config.target_interactions / expected_rows_per_slate(config)
    n_sessions_target = n_slates / config.mean_session_steps
    active = ~population.cold
    window = np.maximum(config.end_timestamp - population.window_start, 1).astype(np.float64)
    cap = np.maximum(1.0, window / 3600.0 * _MAX_SESSIONS_PER_HOUR)
    rate = population.activity * window

    # Find the scale s with sum(clip(s * rate, 1, cap)) over active users ~= the session target.
    lo, hi = 0.0, 1.0
    while np.clip(hi * rate[active], 1.0, cap[active]).sum() < n_sessions_target and hi < 1e30:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.clip(mid * rate[active], 1.0, cap[active]).sum() < n_sessions_target:
            lo = mid
        else:
            hi = mid
    lam = np.clip(hi * rate, 1.0, cap)
    n_sessions = np.minimum(1 + rng.poisson(lam - 1.0), np.floor(cap)).astype(np.int64)
    n_sessions[~active] = 0

    user_ptr = np.zeros(population.n_users + 1, dtype=np.int64)
    np.cumsum(n_sessions, out=user_ptr[1:])
    total = int(user_ptr[-1])
    mean_steps = max(1.0, n_slates / max(total, 1))
    steps = rng.geometric(1.0 / mean_steps, size=total).astype(np.int32)
    slot_ptr = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(steps.astype(np.int64) * config.slate_size, out=slot_ptr[1:])
    return SessionPlan(user_ptr=user_ptr, steps=steps, slot_ptr=slot_ptr)
