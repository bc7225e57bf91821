"""Watch time in the simulator: video durations, plays of clicked items, likes, and the ground
truth of satisfaction that an evaluation can ask about any (user, item) pair.

:class:`WatchTruth` holds the per-item traits (duration, substance, likeability, click
quality) and the users' category interests; :meth:`WatchTruth.mean_fraction` is the expected
watched fraction of a play (the user's satisfaction, see
:class:`~funnelrec.data.simulator.watch_config.WatchConfig`), :meth:`WatchTruth.click_probability`
the chance a list position is clicked. :func:`add_watch` turns a simulated log's click rows
into plays (``play_duration``), adds ``video_duration`` to every row and emits ``like`` rows.

Simulator ids are 1-based indices (``user_id = user_idx + 1``), so the truth is indexed by
``id - 1``. All draws come from a stream of their own (``[seed, _STREAM]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.catalog import Catalog
from funnelrec.data.simulator.config import SimulatorConfig
from funnelrec.data.simulator.plan import examination
from funnelrec.data.simulator.population import Population
from funnelrec.data.simulator.watch_config import WatchConfig

_STREAM = 0x5741  # "WA": the watch model's own random stream
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAX_CLICK = 0.95  # the kernel's cap on a click probability
_SESSION_MATCH = 0.4  # the kernel's sub-topic match: an average session, outside any session
_MIN_FRACTION = 1e-3  # Beta parameters must stay positive


@dataclass(frozen=True)
class WatchTruth:
    """The simulator's ground truth of watching (``I`` items, ``U`` users, ``C`` categories).

    Attributes:
        config: the watch model.
        duration: ``[I]`` float64 video length (s).
        substance: ``[I]`` float64 hidden item trait (standardised) that satisfies users.
        likeability: ``[I]`` float64 item trait (standardised) that draws likes.
        quality: ``[I]`` float64 the kernel's click-quality factor.
        category: ``[I]`` int32 item category.
        interest: ``[U, C]`` float64 users' initial category interests.
        taste_key: ``[1]`` uint64 key of the per-(user, item) taste factor.
        click_scale: the kernel's click probability of a perfectly relevant item at position 0.
        position_exponent: the kernel's position-bias exponent.
    """

    config: WatchConfig
    duration: NDArray[np.float64]
    substance: NDArray[np.float64]
    likeability: NDArray[np.float64]
    quality: NDArray[np.float64]
    category: NDArray[np.int32]
    interest: NDArray[np.float64]
    taste_key: NDArray[np.uint64]
    click_scale: float
    position_exponent: float

    def affinity(self, users: NDArray[np.integer], items: NDArray[np.integer]) -> NDArray:
        """``[...]`` the user's interest in the item's category, ``sqrt(theta / max theta)``
        in ``[0, 1]`` (indices, any matching shapes)."""
        top = self.interest.max(axis=1)
        theta = self.interest[users, self.category[items]]
        return np.sqrt(theta / np.maximum(top[users], 1e-12))

    def taste(self, users: NDArray[np.integer], items: NDArray[np.integer]) -> NDArray:
        """``[...]`` a fixed per-(user, item) factor, uniform with unit variance."""
        u = np.asarray(users).astype(np.uint64)
        i = np.asarray(items).astype(np.uint64)
        z = _mix64(self.taste_key[0] ^ (u * _MIX1))
        z = _mix64(z ^ (i * _MIX2 + _GOLDEN))
        unit = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        return (2.0 * unit - 1.0) * np.sqrt(3.0)

    def mean_fraction(self, users: NDArray[np.integer], items: NDArray[np.integer]) -> NDArray:
        """``[...]`` expected watched fraction of a play: the user's satisfaction with it."""
        c = self.config
        logit = (
            c.interest_weight * (2.0 * self.affinity(users, items) - 1.0)
            + c.substance_weight * self.substance[items]
            + c.taste_weight * self.taste(users, items)
            - c.duration_bias * np.log(self.duration[items] / c.median_duration_s)
        )
        return 1.0 / (1.0 + np.exp(-logit))

    def click_probability(
        self, users: NDArray[np.integer], items: NDArray[np.integer], positions: NDArray
    ) -> NDArray:
        """``[...]`` chance a shown item is clicked at a 0-based list position: position bias x
        interest x click quality, as the kernel's click model for an average session match."""
        n = int(np.max(positions)) + 1 if np.size(positions) else 1
        bias = examination(n, self.position_exponent)[positions]
        relevance = _SESSION_MATCH * (0.1 + 0.9 * self.affinity(users, items))
        return np.minimum(_MAX_CLICK, self.click_scale * bias * relevance * self.quality[items])


def _mix64(z: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The splitmix64 finaliser on arrays (uint64 arithmetic wraps, as intended)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _standardise(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return (x - x.mean()) / max(float(x.std()), 1e-12)


def build_watch_truth(
    config: SimulatorConfig, catalog: Catalog, population: Population
) -> WatchTruth:
    """Draw the items' durations and traits (its own stream; nothing else changes).

    Example:
        >>> from funnelrec.data.simulator import SimulatorConfig, simulate
        >>> cfg = SimulatorConfig.for_interactions(5_000).model_copy(
        ...     update={"watch": WatchConfig(enabled=True)})
        >>> truth = simulate(cfg).watch
        >>> truth.duration.shape[0] == cfg.n_items
        True
    """
    w = config.watch
    rng = np.random.default_rng([config.seed, _STREAM])
    n = catalog.n_items
    duration = w.median_duration_s * np.exp(w.duration_sigma * rng.standard_normal(n))
    duration = np.clip(duration, w.min_duration_s, w.max_duration_s)
    q = _standardise(catalog.quality)
    rho, lam = w.bait_correlation, w.like_bait_correlation
    substance = -rho * q + np.sqrt(1.0 - rho**2) * rng.standard_normal(n)
    likeability = lam * q + np.sqrt(1.0 - lam**2) * rng.standard_normal(n)
    return WatchTruth(
        config=w,
        duration=duration,
        substance=substance,
        likeability=likeability,
        quality=catalog.quality,
        category=catalog.category,
        interest=population.interest,
        taste_key=rng.integers(0, np.iinfo(np.uint64).max, size=1, dtype=np.uint64),
        click_scale=config.click_scale,
        position_exponent=config.position_bias,
    )


def draw_fractions(
    truth: WatchTruth, users: NDArray, items: NDArray, rng: np.random.Generator
) -> NDArray[np.float64]:
    """``[N]`` watched fraction of each play, ``Beta(c * m, c * (1 - m))`` around its mean."""
    m = np.clip(truth.mean_fraction(users, items), _MIN_FRACTION, 1.0 - _MIN_FRACTION)
    c = truth.config.play_concentration
    return rng.beta(c * m, c * (1.0 - m))


def like_probability(truth: WatchTruth, items: NDArray, fraction: NDArray) -> NDArray:
    """``[N]`` chance a play ends in a like: more for catchy items and longer-watched plays."""
    logit = 2.0 * truth.likeability[items] + 3.0 * (fraction - 0.5)
    return np.minimum(1.0, 2.0 * truth.config.like_rate / (1.0 + np.exp(-logit)))


def add_watch(interactions: pl.DataFrame, truth: WatchTruth, seed: int) -> pl.DataFrame:
    """Plays, durations and likes on a simulated log.

    Args:
        interactions: the simulator's canonical interactions (1-based ids, sorted by time).
        truth: the watch ground truth of the same simulation.
        seed: the simulation's seed (the stream is ``[seed, _STREAM, 1]``).

    Returns:
        The log with ``play_duration`` (Float64 s, on click rows; null elsewhere),
        ``video_duration`` (Float64 s, every row) and a ``like`` row after each liked play
        (at the click time plus the play, rounded up; same session and position), re-sorted
        by time (stable).
    """
    rng = np.random.default_rng([seed, _STREAM, 1])
    user = interactions["user_id"].to_numpy() - 1
    item = interactions["item_id"].to_numpy() - 1
    clicked = np.flatnonzero((interactions["event"] == "click").to_numpy())
    fraction = draw_fractions(truth, user[clicked], item[clicked], rng)
    seconds = fraction * truth.duration[item[clicked]]
    play = np.full(interactions.height, np.nan)
    play[clicked] = seconds
    out = interactions.with_columns(
        pl.Series("play_duration", play, dtype=pl.Float64).fill_nan(None),
        pl.Series("video_duration", truth.duration[item], dtype=pl.Float64),
    )
    liked = rng.random(clicked.shape[0]) < like_probability(truth, item[clicked], fraction)
    likes = out[clicked[liked]].with_columns(
        pl.lit("like").alias("event"),
        (pl.col("timestamp") + pl.col("play_duration").ceil().cast(pl.Int64).clip(1)),
        pl.lit(None, dtype=pl.Float64).alias("play_duration"),
    )
    return pl.concat([out, likes]).sort("timestamp", "user_id", maintain_order=True)
