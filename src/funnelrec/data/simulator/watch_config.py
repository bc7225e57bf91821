"""Configuration of the simulator's watch-time and retention model (off by default).

Kept apart from :mod:`funnelrec.data.simulator.config` so that the one field it adds there
(``SimulatorConfig.watch``) is the only change to the shared config; the model itself is in
:mod:`~funnelrec.data.simulator.watch` and :mod:`~funnelrec.data.simulator.retention`.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetentionConfig(BaseModel):
    """Whether a user comes back the next day, driven by how satisfied they were today.

    A day's satisfaction is ``sum over its plays of (watch fraction - neutral_fraction)``: a
    play watched past the neutral fraction pleases, a skip annoys. The next-day return
    probability is ``sigmoid(logit(base_return) + sensitivity * satisfaction)`` (the shift
    clipped to +-``max_shift``). On (``enabled``), a user who does not return loses every
    session of the next day from the log; more clicks on disappointing items then mean fewer
    days of activity: "clicks up, retention down" can happen and be measured.

    Example:
        >>> RetentionConfig(enabled=True).base_return
        0.6
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Thin next-day sessions by the return probability.")
    base_return: float = Field(
        0.6, gt=0, lt=1, description="Next-day return probability after a neutral day."
    )
    sensitivity: float = Field(
        0.6, ge=0, description="Logit change of the return probability per unit of satisfaction."
    )
    neutral_fraction: float = Field(
        0.4, ge=0, le=1, description="Watch fraction that neither pleases nor annoys."
    )
    max_shift: float = Field(
        4.0, gt=0, description="Largest logit change a day's satisfaction can make."
    )


class WatchConfig(BaseModel):
    """Video durations, play durations, likes and skips (off by default: bit-identical data).

    Every item gets a duration (log-normal). A clicked item is played for a fraction of it
    drawn from ``Beta(c * m, c * (1 - m))`` whose mean ``m`` is the user's *satisfaction*
    with the item: ``sigmoid(interest_weight * (2a - 1) + substance_weight * substance +
    taste_weight * taste - duration_bias * log(duration / median))``, with ``a`` the user's
    interest in the item's category (``sqrt(theta / max theta)``, as the click model reads it),
    ``substance`` a hidden item trait anti-correlated (``bait_correlation``) with the click
    quality the kernel uses (catchy items are clicked more and watched less), ``taste`` a fixed
    per-(user, item) factor, and longer videos finished less often (the duration bias a
    debiased objective removes). A play may end in a ``like`` whose chance grows with the
    watched fraction and with the item's ``likeability`` (correlated with click quality by
    ``like_bait_correlation``: likes favour catchy items, not the ones that keep users).

    The output gains ``play_duration`` (seconds, on click rows), ``video_duration`` (seconds,
    every row) and ``like`` events. Draws come from streams of their own: the clicks, carts and
    orders stay those of the same config without this block (retention then thins them).

    Example:
        >>> WatchConfig(enabled=True).median_duration_s
        30.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Add durations, plays and likes to the log.")
    median_duration_s: float = Field(30.0, gt=0, description="Median video length (s).")
    duration_sigma: float = Field(0.9, ge=0, description="Log-normal sigma of video lengths.")
    min_duration_s: float = Field(3.0, gt=0, description="Shortest video (s).")
    max_duration_s: float = Field(600.0, gt=0, description="Longest video (s).")
    interest_weight: float = Field(
        2.0, ge=0, description="Satisfaction logit per unit of 2 x category interest - 1."
    )
    substance_weight: float = Field(
        1.0, ge=0, description="Satisfaction logit per standard deviation of item substance."
    )
    taste_weight: float = Field(
        0.5, ge=0, description="Satisfaction logit per standard deviation of personal taste."
    )
    bait_correlation: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="Correlation of click quality with a *lack* of substance (clickbait).",
    )
    duration_bias: float = Field(
        0.5, ge=0, description="Logit drop of the watch fraction per log(duration / median)."
    )
    play_concentration: float = Field(
        4.0, gt=0, description="Beta concentration of the watched fraction around its mean."
    )
    like_rate: float = Field(0.15, ge=0, le=1, description="Like probability of a typical play.")
    like_bait_correlation: float = Field(
        0.6, ge=0, lt=1, description="Correlation of item likeability with click quality."
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @model_validator(mode="after")
    def _retention_needs_plays(self) -> Self:
        if self.retention.enabled and not self.enabled:
            raise ValueError(
                "watch.retention.enabled needs watch.enabled: a day's satisfaction is read "
                "from its plays"
            )
        if self.min_duration_s > self.max_duration_s:
            raise ValueError("watch.min_duration_s must be <= watch.max_duration_s")
        return self
