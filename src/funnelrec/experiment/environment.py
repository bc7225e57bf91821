"""A closed-loop environment: simulated users, served funnels, daily retraining.

Each simulated day:

1. who comes: a user active yesterday returns with the simulator's next-day return
   probability of the list they were shown (:func:`~funnelrec.data.simulator.retention.
   expected_return`: satisfying lists bring users back); anyone else comes with probability
   ``daily_active``;
2. each active user's arm (hash assignment, :class:`~funnelrec.abtest.assignment.
   ExperimentPlan`) serves them its funnel's top ``k`` at the start of the day;
3. they react by the simulator's ground truth (:class:`~funnelrec.data.simulator.watch.
   WatchTruth`): a click with the position-biased click probability (times the arm's
   ``planted_lift``, for calibration only; times ``fatigue`` per earlier day the item was
   shown to them, boredom), then a play of a watched fraction of the video;
4. the impressions and clicks (with play durations) join the log, and every arm's funnel is
   refitted on the accumulated log (``retrain_every`` days) with the public
   ``Recommender.fit``, the same training ``funnelrec train`` runs.

The outcome is one row per (day, user) served: arm, impressions, clicks, watch seconds and
whether the user came back the next day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.abtest.assignment import ExperimentPlan
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatedData
from funnelrec.data.simulator.config import DAY_S
from funnelrec.data.simulator.retention import expected_return
from funnelrec.data.simulator.watch import WatchTruth, draw_fractions
from funnelrec.errors import ConfigError
from funnelrec.pipeline.recommender import Recommender

logger = logging.getLogger(__name__)

OUTCOME_SCHEMA = pl.Schema(
    {
        "day": pl.Int32,
        "user_id": pl.Int64,
        "arm": pl.String,
        "impressions": pl.Int32,
        "clicks": pl.Int32,
        "watch_s": pl.Float64,
        "returned": pl.Boolean,
    }
)
Fit = Callable[[Dataset, str], Recommender]
"""Fits the funnel of an arm on a dataset (the environment's retraining)."""


class EnvironmentConfig(BaseModel):
    """How the simulated days run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(14, ge=1, description="Simulated days of the experiment.")
    k: int = Field(10, ge=1, description="Items per served list.")
    daily_active: float = Field(
        0.3, gt=0, le=1, description="Chance a user not active yesterday comes today."
    )
    retrain_every: int = Field(1, ge=0, description="Refit every N days (0: never).")
    fatigue: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Boredom: a user's click chance on an item is multiplied by this for every "
        "earlier day the experiment showed them that item (1 = off, the default; e.g. 0.7 "
        "makes a funnel that repeats itself lose clicks).",
    )
    planted_lift: dict[str, float] = Field(
        default_factory=dict,
        description="Arm -> multiplier of its click probabilities (calibration: a known "
        "effect); arms not named are 1.",
    )
    seed: int = 0


@dataclass
class Responses:
    """One day's served lists of one arm and the users' reactions."""

    users: NDArray[np.int64]  # [n] 0-based simulator user indices
    items: NDArray[np.int64]  # [n, k] 0-based item indices, -1 = no item
    clicked: NDArray[np.bool_]  # [n, k]
    watch_s: NDArray[np.float64]  # [n, k] seconds played (0 without a click)
    returns: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # [n]
    chance: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))  # [n, k]
    # the click probabilities the users reacted with, fatigue included, arm lift not


def served_items(recommender: Recommender, users: NDArray[np.int64], k: int, now: int):
    """``[n, k]`` 0-based item indices the funnel serves ``users`` (0-based), -1 padded."""
    out = np.full((users.shape[0], k), -1, dtype=np.int64)
    if users.shape[0] == 0:
        return out
    ranked = recommender.recommend((users + 1).tolist(), k=k, timestamp=now)
    row_of = {int(u) + 1: i for i, u in enumerate(users)}
    rows = np.array([row_of[int(u)] for u in ranked["user_id"].to_list()], dtype=np.int64)
    out[rows, ranked["rank"].to_numpy() - 1] = ranked["item_id"].to_numpy().astype(np.int64) - 1
    return out


def click_chance(
    truth: WatchTruth, users: NDArray[np.int64], items: NDArray[np.int64]
) -> NDArray[np.float64]:
    """``[n, k]`` the truth's click probability of each shown slot (0 where ``items`` is -1)."""
    valid = items >= 0
    safe = np.where(valid, items, 0)
    rows = np.broadcast_to(users[:, None], items.shape)
    positions = np.broadcast_to(np.arange(items.shape[1]), items.shape)
    return truth.click_probability(rows, safe, positions) * valid


def respond(
    truth: WatchTruth,
    users: NDArray[np.int64],
    items: NDArray[np.int64],
    rng: np.random.Generator,
    lift: float = 1.0,
    fatigue: NDArray[np.float64] | float = 1.0,
) -> Responses:
    """Clicks and plays of ``users`` shown ``items`` (``[n, k]``, -1 padded), by the truth;
    ``fatigue`` (a number or ``[n, k]``) multiplies the click chances (boredom with items
    shown before), ``lift`` too (a planted effect)."""
    base = click_chance(truth, users, items) * fatigue
    clicked = rng.random(items.shape) < np.minimum(1.0, base * lift)
    safe = np.where(items >= 0, items, 0)
    rows = np.broadcast_to(users[:, None], items.shape)
    watch = np.zeros(items.shape)
    if clicked.any():
        fraction = draw_fractions(truth, rows[clicked], safe[clicked], rng)
        watch[clicked] = fraction * truth.duration[safe[clicked]]
    returns = expected_return(truth, users, items)
    return Responses(users, items, clicked, watch, returns, np.minimum(1.0, base))


def day_events(responses: Responses, now: int) -> pl.DataFrame:
    """The day's impressions and clicks as canonical interaction rows (1-based ids)."""
    user_rows, slot = np.nonzero(responses.items >= 0)
    item = responses.items[user_rows, slot]
    user = responses.users[user_rows]
    impressions = pl.DataFrame(
        {
            "user_id": user + 1,
            "item_id": item + 1,
            "timestamp": np.full(user.shape[0], now, dtype=np.int64),
            "event": ["impression"] * user.shape[0],
            "position": slot.astype(np.int32),
            "play_duration": np.full(user.shape[0], None, dtype=object).astype(np.float64),
        }
    )
    hit = responses.clicked[user_rows, slot]
    clicks = impressions.filter(pl.Series(hit)).with_columns(
        pl.lit("click").alias("event"),
        (pl.col("timestamp") + 1 + pl.col("position")),
        pl.Series(responses.watch_s[user_rows, slot][hit]).alias("play_duration"),
    )
    return pl.concat([impressions, clicks])


class Environment:
    """The simulated world an experiment runs in (see the module docstring).

    Args:
        data: a simulation with the watch ground truth (``SimulatorConfig.watch.enabled``);
            its log is the history before the experiment.
        config: the days, list length, activity and planted lifts.
    """

    def __init__(self, data: SimulatedData, config: EnvironmentConfig) -> None:
        if data.watch is None:
            raise ConfigError(
                "the experiment environment needs the simulator's watch ground truth "
                "(SimulatorConfig.watch.enabled = true)"
            )
        self.data, self.truth, self.config = data, data.watch, config
        self.log = data.interactions
        self.rng = np.random.default_rng([config.seed, 0x4142])
        last = self.log["timestamp"].to_numpy().max()
        self.now = (int(last) // DAY_S + 1) * DAY_S
        self.served: list[tuple[int, str, Responses]] = []  # (day, arm, lists and reactions)
        # (user, item) pairs shown so far in the experiment, as sorted keys with their counts
        self._shown_keys = np.zeros(0, dtype=np.int64)
        self._shown_counts = np.zeros(0, dtype=np.int64)
        self.recommenders: dict[str, Recommender] = {}  # the arms' funnels, last fitted

    def dataset(self) -> Dataset:
        """The accumulated log as a Dataset (what every arm retrains on)."""
        return Dataset.from_frame(self.log, items=self.data.items, users=self.data.users)

    def run(self, plan: ExperimentPlan, arms: Mapping[str, object], fit: Fit) -> pl.DataFrame:
        """Run the days; ``arms`` names the arms of the plan's one experiment (values are
        what ``fit`` needs to build each arm's funnel). Returns the outcome table."""
        users = self.data.users["user_id"].to_numpy().astype(np.int64) - 1
        arm_of = _arms(plan, users, set(arms))
        recommenders = {arm: fit(self.dataset(), arm) for arm in arms}
        active = self.rng.random(users.shape[0]) < self.config.daily_active
        rows: list[pl.DataFrame] = []
        for day in range(self.config.days):
            back = np.zeros(users.shape[0])
            events = []
            for arm, recommender in recommenders.items():
                who = users[active & (arm_of == arm)]
                items = served_items(recommender, who, self.config.k, self.now)
                lift = self.config.planted_lift.get(arm, 1.0)
                fatigue = self.config.fatigue ** self.times_shown(who, items)
                answer = respond(self.truth, who, items, self.rng, lift, fatigue)
                back[who] = answer.returns
                self.served.append((day, arm, answer))
                events.append(day_events(answer, self.now))
                rows.append(_outcomes(day, arm, answer))
            returned = self.rng.random(users.shape[0]) < back
            rows[-len(recommenders) :] = [
                r.with_columns(pl.Series("returned", returned[r["user_id"].to_numpy() - 1]))
                for r in rows[-len(recommenders) :]
            ]
            for _, _, shown in self.served[-len(recommenders) :]:
                self._remember(shown.users, shown.items)
            self.log = pl.concat([self.log, *events], how="diagonal_relaxed").sort("timestamp")
            self.now += DAY_S
            fresh = self.rng.random(users.shape[0]) < self.config.daily_active
            active = np.where(active, returned, fresh)
            retrain = self.config.retrain_every
            if retrain and (day + 1) % retrain == 0 and day + 1 < self.config.days:
                data = self.dataset()
                recommenders = {arm: fit(data, arm) for arm in arms}
            logger.info("experiment day %d done", day + 1)
        self.recommenders = recommenders
        return pl.concat(rows).select(list(OUTCOME_SCHEMA)).cast(OUTCOME_SCHEMA)

    def _keys(self, users: NDArray[np.int64], items: NDArray[np.int64]) -> NDArray[np.int64]:
        return users[:, None] * np.int64(self.truth.duration.shape[0]) + items

    def times_shown(self, users: NDArray[np.int64], items: NDArray[np.int64]) -> NDArray:
        """``[n, k]`` how many earlier days of the experiment showed each user each item."""
        keys = self._keys(users, items)
        if self._shown_keys.size == 0:
            return np.zeros(keys.shape, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._shown_keys, keys), self._shown_keys.size - 1)
        found = (self._shown_keys[at] == keys) & (items >= 0)
        return np.where(found, self._shown_counts[at], 0)

    def _remember(self, users: NDArray[np.int64], items: NDArray[np.int64]) -> None:
        keys = self._keys(users, items)[items >= 0]
        every = np.concatenate([np.repeat(self._shown_keys, self._shown_counts), keys])
        self._shown_keys, self._shown_counts = np.unique(every, return_counts=True)

    def pre_clicks(self) -> pl.DataFrame:
        """``user_id, pre_clicks``: each user's clicks in the log before the experiment."""
        clicks = self.data.interactions.filter(pl.col("event") == "click")
        return clicks.group_by("user_id").agg(pl.len().cast(pl.Float64).alias("pre_clicks"))


def _arms(plan: ExperimentPlan, users: NDArray[np.int64], names: set[str]) -> NDArray[np.str_]:
    """Each user's arm in the plan's one experiment ('' = not in it)."""
    if len(plan.layers) != 1 or len(plan.layers[0].experiments) != 1:
        raise ConfigError("the environment runs one experiment: one layer, one experiment")
    experiment = plan.layers[0].experiments[0]
    if set(experiment.arms) != names:
        raise ConfigError(f"arms {sorted(names)} differ from the plan's {sorted(experiment.arms)}")
    out = np.full(users.shape[0], "", dtype=object)
    for i, user in enumerate(users):
        got = plan.assign(str(int(user) + 1)).get(plan.layers[0].name)
        if got is not None:
            out[i] = got.arm
    return out


def _outcomes(day: int, arm: str, answer: Responses) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": np.full(answer.users.shape[0], day, dtype=np.int32),
            "user_id": answer.users + 1,
            "arm": [arm] * answer.users.shape[0],
            "impressions": (answer.items >= 0).sum(axis=1).astype(np.int32),
            "clicks": answer.clicked.sum(axis=1).astype(np.int32),
            "watch_s": answer.watch_s.sum(axis=1),
        }
    )


__all__ = [
    "OUTCOME_SCHEMA",
    "Environment",
    "EnvironmentConfig",
    "Fit",
    "Responses",
    "click_chance",
    "day_events",
    "respond",
    "served_items",
]
