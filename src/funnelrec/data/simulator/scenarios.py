"""The scenarios of a simulation as the compiled loop reads them, and the scenario column.

:func:`plan_scenarios` turns ``SimulatorConfig.scenarios``
(:mod:`~funnelrec.data.simulator.scenario_config`) into per-scenario tables (position curves
with the click propensity folded in, slate-source mixes, per-category intent factors) and one
scenario per planned session. Without scenarios it returns the one-scenario tables of the
plain simulator (the global curve and mix, intent factors of exactly 1) and draws nothing, so
the log is bit-identical to a simulator without scenarios.

The draws come from a stream of their own (``default_rng([seed, tag])``), never from the
simulation's main generator: turning scenarios on changes the sessions' behaviour, not which
users, items and sessions exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.config import SimulatorConfig
from funnelrec.data.simulator.plan import SessionPlan, examination

_STREAM_TAG = 0x5CE2  # the scenarios' own stream: default_rng([seed, _STREAM_TAG])
SCENARIO_COLUMN = "scenario"  # the optional Interactions column (schema.INTERACTIONS)


@dataclass(frozen=True, slots=True)
class ScenarioPlan:
    """What the compiled loop reads about scenarios (``S`` scenarios, ``N`` sessions,
    ``C`` categories); ``S = 1`` without scenarios.

    Attributes:
        names: ``S`` scenario names (empty without scenarios: no column is added).
        session: ``[N]`` int8 scenario of each planned session.
        curve: ``[S, slate]`` click factor by position: propensity x examination.
        mix_cum: ``[S, 6]`` cumulative slate-source probabilities.
        intent: ``[S, C]`` factor on the relevance of an item of each category.
    """

    names: tuple[str, ...]
    session: NDArray[np.int8]
    curve: NDArray[np.float64]
    mix_cum: NDArray[np.float64]
    intent: NDArray[np.float64]

    def label(self, interactions: pl.DataFrame) -> pl.DataFrame:
        """``interactions`` with a ``scenario`` (String) column read through ``session_id``
        (1-based global session index); unchanged without scenarios.

        Example:
            >>> plan = ScenarioPlan(("a", "b"), np.array([1, 0], dtype=np.int8),
            ...     np.ones((2, 1)), np.ones((2, 6)), np.ones((2, 1)))
            >>> plan.label(pl.DataFrame({"session_id": [1, 2, 1]}))["scenario"].to_list()
            ['b', 'a', 'b']
        """
        if not self.names:
            return interactions
        codes = self.session.astype(np.uint32)[interactions["session_id"].to_numpy() - 1]
        names = pl.Series(SCENARIO_COLUMN, self.names, dtype=pl.String)
        return interactions.with_columns(names.gather(pl.Series(codes)).alias(SCENARIO_COLUMN))


def _session_scenarios(
    rng: np.random.Generator, config: SimulatorConfig, plan: SessionPlan
) -> NDArray[np.int8]:
    """``[N]`` scenario of each session, drawn from its user's scenario mix."""
    scn = config.scenarios
    shares = np.asarray([s.share for s in scn.specs], dtype=np.float64)
    shares /= shares.sum()
    n_users = plan.user_ptr.shape[0] - 1
    if scn.user_concentration is None:
        mix = np.broadcast_to(shares, (n_users, shares.shape[0]))
    else:
        mix = rng.dirichlet(np.maximum(shares * scn.user_concentration, 1e-3), size=n_users)
    cum = np.cumsum(mix, axis=1)
    cum[:, -1] = 1.0
    user = np.repeat(np.arange(n_users), np.diff(plan.user_ptr))
    u = rng.random(user.shape[0])
    return (u[:, None] >= cum[user]).sum(axis=1).astype(np.int8)


def plan_scenarios(config: SimulatorConfig, plan: SessionPlan) -> ScenarioPlan:
    """The scenario tables and each session's scenario (see :class:`ScenarioPlan`).

    Args:
        config: the simulator config (``config.scenarios`` and the global curve and mix).
        plan: the session plan (sessions grouped by user).

    Returns:
        The :class:`ScenarioPlan`; one plain scenario when ``config.scenarios`` is off.

    Example:
        >>> from funnelrec.data.simulator.scenario_config import ScenarioConfig
        >>> cfg = SimulatorConfig.for_interactions(5_000).model_copy(
        ...     update={"scenarios": ScenarioConfig.preset()})
        >>> plan = SessionPlan(np.array([0, 2]), np.ones(2, np.int32), np.array([0, 10, 20]))
        >>> scn = plan_scenarios(cfg, plan)
        >>> scn.curve.shape, scn.intent.shape[0], scn.session.shape
        ((3, 10), 3, (2,))
    """
    n_sessions = plan.n_sessions
    if not config.scenarios.enabled:
        return ScenarioPlan(
            names=(),
            session=np.zeros(n_sessions, dtype=np.int8),
            curve=examination(config.slate_size, config.position_bias)[None, :],
            mix_cum=config.slate_mix.cumulative()[None, :],
            intent=np.ones((1, config.n_categories), dtype=np.float64),
        )
    specs = config.scenarios.specs
    rng = np.random.default_rng([config.seed, _STREAM_TAG])
    sigma = np.asarray([s.intent_tilt for s in specs], dtype=np.float64)[:, None]
    z = rng.standard_normal((len(specs), config.n_categories))
    intent = np.exp(sigma * z - 0.5 * sigma**2)  # log-normal, mean 1 per category
    curve = np.stack(
        [
            s.click_propensity
            * examination(
                config.slate_size,
                config.position_bias if s.position_bias is None else s.position_bias,
            )
            for s in specs
        ]
    )
    mix_cum = np.stack([(s.slate_mix or config.slate_mix).cumulative() for s in specs])
    return ScenarioPlan(
        names=config.scenarios.names,
        session=_session_scenarios(rng, config, plan),
        curve=curve,
        mix_cum=mix_cum,
        intent=intent,
    )
