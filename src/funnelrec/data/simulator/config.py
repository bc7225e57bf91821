"""The typed, frozen configuration of the synthetic interaction simulator."""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.data.simulator.conversion_delay import ConversionDelayConfig
from funnelrec.data.simulator.scenario_config import ScenarioConfig
from funnelrec.data.simulator.slate_mix import SlateMix
from funnelrec.data.simulator.watch_config import WatchConfig
from funnelrec.errors import ConfigError

DAY_S = 86_400


class LongTermInterestConfig(BaseModel):
    """Users with long-term periodic interests: the ground truth for long behaviour sequences.

    A share of the active users each get 1-3 *periodic categories*. Each one has a period, a
    burst length and a phase: during a burst the category takes ``burst_share`` of the user's
    session focus (and tops their interest, so its items are also the most relevant); between
    bursts its interest is multiplied by ``off_burst_weight`` (0 = suppressed). A user who buys
    in category C for a few days, then nothing in C for weeks, then again, is the case where the
    last 50 events say nothing about C and the full history does.

    Off by default (``share_of_users=0``): the simulation is then bit-identical to one without
    this block. When on, the planting draws from a stream of its own and planted users alone
    change, so every other user's rows stay the same.

    Example:
        >>> LongTermInterestConfig(share_of_users=0.2).enabled
        True
        >>> LongTermInterestConfig().enabled
        False
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    share_of_users: float = Field(
        0.0, ge=0, le=1, description="Share of active users given periodic categories (0 = off)."
    )
    min_categories: int = Field(1, ge=1, le=4, description="Fewest periodic categories per user.")
    max_categories: int = Field(3, ge=1, le=4, description="Most periodic categories per user.")
    min_period_days: float = Field(
        14.0, gt=0, description="Shortest period (days) between the starts of two bursts."
    )
    max_period_days: float = Field(
        60.0, gt=0, description="Longest period (days); periods are uniform in [min, max]."
    )
    min_burst_days: float = Field(2.0, gt=0, description="Shortest burst (days).")
    max_burst_days: float = Field(
        5.0, gt=0, description="Longest burst (days); burst lengths are uniform in [min, max]."
    )
    burst_share: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Share of the user's session focus a category takes during its burst.",
    )
    off_burst_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Factor on the category's own interest between bursts (0 = suppressed, "
        "1 = its baseline).",
    )

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.min_categories > self.max_categories:
            raise ValueError(
                f"long_term.min_categories={self.min_categories} must be <= "
                f"max_categories={self.max_categories}"
            )
        if self.min_period_days > self.max_period_days:
            raise ValueError(
                f"long_term.min_period_days={self.min_period_days:g} must be <= "
                f"max_period_days={self.max_period_days:g}"
            )
        if self.min_burst_days > self.max_burst_days:
            raise ValueError(
                f"long_term.min_burst_days={self.min_burst_days:g} must be <= "
                f"max_burst_days={self.max_burst_days:g}"
            )
        if self.max_burst_days >= self.min_period_days:
            raise ValueError(
                f"long_term.max_burst_days={self.max_burst_days:g} must be shorter than "
                f"min_period_days={self.min_period_days:g}, or a burst never ends"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether any user gets periodic categories."""
        return self.share_of_users > 0


POSITIVE_SHARE = 0.11
"""Share of click/cart/order rows in a default simulated log (measured: 109k of 996k at 1M)."""


class SimulatorConfig(BaseModel):
    """Everything that shapes a simulated dataset; the same config and seed give the same data.

    The generative story: items (category > sub-topic > cluster of related items, Zipf
    popularity, creation times, topical titles); users (demographics that tilt a sparse
    Dirichlet interest over categories, sign-up time, heavy-tailed activity); per user, sessions
    at heavy-tailed gaps, each focused on one category / sub-topic / anchor cluster (or resuming
    the previous focus after a short gap), interests drifting between sessions; per session step
    a slate of available items from a mix of sources, ordered by a noisy system score; clicks
    with probability position bias x relevance, then carts and orders. Optionally
    (``long_term``, off by default) some users have categories they return to in periodic
    bursts, the planted ground truth for long behaviour sequences.

    The defaults describe a medium dataset of about one million interaction rows (impressions
    included). :meth:`for_interactions` scales users, items, categories and vocabulary with a
    target row count.

    Example:
        >>> cfg = SimulatorConfig.for_interactions(100_000, seed=3)
        >>> cfg.n_users, cfg.n_items, cfg.seed
        (2000, 2500, 3)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0, description="Seed of the one np.random.Generator used.")

    # ---- size ----
    n_users: int = Field(20_000, gt=0, description="Users in the users table (cold ones too).")
    n_items: int = Field(25_000, gt=0, description="Items in the items table.")
    n_categories: int = Field(20, ge=1, le=999, description="Top-level item categories.")
    n_subtopics: int = Field(8, ge=1, le=64, description="Finer sub-topics per category.")
    cluster_size: int = Field(
        12, ge=1, description="Mean items per cluster (related items) within a sub-topic."
    )
    target_interactions: int = Field(
        1_000_000, gt=0, description="Approximate total rows (impressions + events)."
    )
    emit_impressions: bool = Field(
        True,
        description="Keep impression rows in the output. False keeps only click/cart/order "
        "rows (dropped batch by batch, so a log of 10M positives needs no memory for the "
        "~10x more impressions behind it).",
    )

    # ---- time ----
    start_timestamp: int = Field(1_700_000_000, ge=0, description="Start of the span (unix s).")
    span_days: float = Field(60.0, ge=1.0, description="Length of the simulated span (days).")

    # ---- users ----
    cold_user_fraction: float = Field(
        0.05, ge=0, lt=1, description="Users listed in the users table with no interactions."
    )
    late_signup_fraction: float = Field(
        0.3, ge=0, le=1, description="Users who sign up during the span (first session after)."
    )
    n_regions: int = Field(8, ge=1, le=99, description="Distinct region values.")
    demographic_strength: float = Field(
        1.5, ge=0, description="Std of demographic effects on category interest (log scale)."
    )
    interest_concentration: float = Field(
        0.5, gt=0, description="Total Dirichlet concentration of interests (small = sparse)."
    )
    activity_sigma: float = Field(
        1.0, ge=0, description="Log-normal sigma of per-user activity (heavy-tailed users)."
    )
    drift_prob: float = Field(
        0.2, ge=0, le=1, description="Chance per session that interests shift to a new category."
    )
    drift_step: float = Field(
        0.4, ge=0, le=1, description="Interest mass moved to the new category on a shift."
    )
    favourite_subtopic_prob: float = Field(
        0.85, ge=0, le=1, description="Chance a session uses the user's favourite sub-topic."
    )
    favourite_cluster_prob: float = Field(
        0.8, ge=0, le=1, description="Chance a session anchors on the user's favourite cluster."
    )
    taste_noise: float = Field(
        0.5, ge=0, lt=1, description="Spread of a fixed per (user, item) taste factor 1 +- x."
    )

    # ---- items ----
    initial_item_fraction: float = Field(
        0.4, gt=0, le=1, description="Items that exist before the span starts."
    )
    item_arrival: Literal["uniform", "growing", "daily_batches"] = Field(
        "uniform", description="When the other items are created during the span."
    )
    popularity_exponent: float = Field(
        1.0, ge=0, description="Zipf exponent a of the exposure weight (rank + offset) ** -a."
    )
    popularity_offset: float = Field(
        10.0, ge=0, description="Zipf-Mandelbrot rank offset (flattens the very head)."
    )
    quality_floor: float = Field(
        0.3, gt=0, le=1, description="Click-quality factor of the least popular item."
    )
    freshness_days: float = Field(
        7.0, gt=0, description="E-folding time (days) of the freshness boost of a new item."
    )
    freshness_floor: float = Field(
        0.4, gt=0, le=1, description="Freshness factor of an old item (new items have 1)."
    )
    title_vocab_size: int = Field(5_000, ge=8, le=1_000_000, description="Distinct title words.")
    title_min_words: int = Field(3, ge=1, description="Shortest title (words).")
    title_max_words: int = Field(8, ge=1, description="Longest title (words).")
    title_topic_share: float = Field(
        0.85, ge=0, le=1, description="Title words from the item's category/sub-topic vocabulary."
    )

    # ---- sessions ----
    mean_session_steps: float = Field(
        1.5, ge=1, description="Mean impression slates per session (geometric)."
    )
    session_gap_sigma: float = Field(
        1.5, ge=0, description="Log-normal sigma of the gaps between sessions (heavy tail)."
    )
    min_session_gap_s: int = Field(1_800, ge=60, description="Minimum idle time between sessions.")
    step_gap_median_s: float = Field(
        30.0, ge=1, description="Median seconds between slates within a session."
    )
    resume_prob: float = Field(
        0.5, ge=0, le=1, description="Chance a session resumes the previous one's focus at gap 0."
    )
    resume_days: float = Field(
        2.0, gt=0, description="E-folding time (days) of that chance with the gap between sessions."
    )
    daily_rhythm: bool = Field(True, description="Session starts follow a daily (evening) peak.")

    # ---- slates and the funnel ----
    slate_size: int = Field(10, ge=1, le=100, description="Items per impression slate.")
    slate_mix: SlateMix = Field(default_factory=SlateMix)
    fresh_window_days: float = Field(
        3.0, gt=0, description="Items created this recently feed the 'fresh' slate source."
    )
    slate_ranking_strength: float = Field(
        0.3, ge=0, description="How strongly slate order follows true relevance (0 = random)."
    )
    position_bias: float = Field(
        0.7, ge=0, description="Exponent b of the examination factor (1 + position)^-b."
    )
    click_scale: float = Field(
        1.5, gt=0, description="Click probability at position 0 of a perfectly relevant item."
    )
    cart_rate: float = Field(0.3, ge=0, le=1, description="Mean P(cart | click).")
    order_rate: float = Field(0.4, ge=0, le=1, description="Mean P(order | cart).")

    # ---- planted long-term structure ----
    long_term: LongTermInterestConfig = Field(
        default_factory=LongTermInterestConfig,
        description="Users with periodic category interests (off by default).",
    )
    scenarios: ScenarioConfig = Field(
        default_factory=ScenarioConfig,
        description="Several scenarios (feed, detail, search, ...) with their own position "
        "curve, click propensity and intent; off by default (no scenario column).",
    )
    watch: WatchConfig = Field(
        default_factory=WatchConfig,
        description="Video durations, plays, likes and satisfaction-driven retention "
        "(off by default: no duration columns).",
    )
    conversion_delay: ConversionDelayConfig = Field(
        default_factory=ConversionDelayConfig,
        description="Orders trail their clicks by a drawn delay (exponential + Weibull tail); "
        "off by default (orders follow within minutes).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.title_min_words > self.title_max_words:
            raise ValueError("title_min_words must be <= title_max_words")
        needed = 2 * (self.n_categories * self.n_subtopics + self.n_categories + 1)
        if self.title_vocab_size < needed:
            raise ValueError(
                f"title_vocab_size={self.title_vocab_size} is too small for "
                f"{self.n_categories} categories x {self.n_subtopics} sub-topics (need >= {needed})"
            )
        if self.long_term.enabled and self.long_term.max_categories >= self.n_categories:
            raise ValueError(
                f"long_term.max_categories={self.long_term.max_categories} needs more "
                f"categories than that (n_categories={self.n_categories}): a user's main "
                "interest is never periodic"
            )
        n_active = self.n_users - math.floor(self.n_users * self.cold_user_fraction)
        if self.target_interactions < self.slate_size * n_active:
            raise ValueError(
                f"target_interactions={self.target_interactions} cannot give each of the "
                f"{n_active} active users one slate of {self.slate_size}; lower n_users"
            )
        return self

    @property
    def end_timestamp(self) -> int:
        """End of the span (unix s, exclusive)."""
        return self.start_timestamp + round(self.span_days * DAY_S)

    @classmethod
    def for_positives(cls, n: int, seed: int = 0) -> SimulatorConfig:
        """A config producing about ``n`` positive rows (click/cart/order) and no impressions.

        The size is that of :meth:`for_interactions` at ``n / POSITIVE_SHARE`` rows, so the
        users, items and behaviour are the same as in the full log of that size.

        Example:
            >>> SimulatorConfig.for_positives(100_000).emit_impressions
            False
        """
        full = cls.for_interactions(max(1_000, round(n / POSITIVE_SHARE)), seed=seed)
        return full.model_copy(update={"emit_impressions": False})

    @classmethod
    def for_interactions(cls, n: int, seed: int = 0) -> SimulatorConfig:
        """A config whose size scales with ``n`` target rows (impressions included).

        About 50 rows per user and 40 per item: 1M rows give 20k users and 25k items.

        Args:
            n: approximate number of interaction rows.
            seed: the generator seed.

        Example:
            >>> SimulatorConfig.for_interactions(1_000_000).n_items
            25000
        """
        if n < 1_000:
            raise ConfigError(f"SimulatorConfig.for_interactions needs n >= 1000, got {n}")
        n_users = max(20, round(n / 50))
        n_items = max(50, round(n / 40))
        n_categories = 20 if n >= 500_000 else max(6, round(20 * (n / 500_000) ** 0.3))
        n_subtopics = int(min(8, max(2, n_items // (n_categories * 25))))
        needed = 2 * (n_categories * n_subtopics + n_categories + 1)
        vocab = max(needed, min(5_000, max(1_000, n_items // 4)))
        return cls(
            seed=seed,
            n_users=n_users,
            n_items=n_items,
            n_categories=n_categories,
            n_subtopics=n_subtopics,
            target_interactions=n,
            title_vocab_size=vocab,
        )
