"""Delayed conversions: orders that arrive hours or days after their click, and their truth.

In the default simulation an order follows its click within minutes, so a 1 h label window
already sees every conversion. Real conversions trail their clicks by hours to weeks (Criteo:
half within a day, a long tail past a week; Chapelle 2014), so a label taken a fixed time
after the exposure misses some of them and a model trained on it under-predicts. With
:class:`ConversionDelayConfig` on, every ``order`` row is moved later by a delay drawn from a
two-component mixture: an exponential (the quick decisions) and a Weibull with shape < 1 (the
long tail past any label window). The share of the slow component depends on the item's
category (some goods are bought on impulse, others after days of thought), so the censoring a
label window causes differs by feature: the case that feature-dependent corrections (DFM, FSIW,
ES-DFM, DEFER; :mod:`funnelrec.rank.delay`) exist for.

Orders moved past the end of the span leave the log (nothing is logged after it) but stay in
the ground truth :class:`SimulatedData.conversions`, so the *eventual* conversion of every
click is known for evaluation. The draws come from a stream of their own
(``default_rng([seed, tag])``); with the option off (default) the simulation is bit-identical
to one without this module.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CONVERSION_SCHEMA", "ConversionDelayConfig", "delay_conversions"]

_STREAM_TAG = 0xDE1A  # the delays' own stream: default_rng([seed, _STREAM_TAG])
HOUR_S = 3_600.0
DAY_S = 86_400.0

CONVERSION_SCHEMA = {
    "user_id": pl.Int64,
    "item_id": pl.Int64,
    "session_id": pl.Int64,
    "position": pl.Int32,
    "immediate_ts": pl.Int64,
    "timestamp": pl.Int64,
    "delay_s": pl.Int64,
    "logged": pl.Boolean,
}
"""Ground truth of every order: the time it would have had without a delay (``immediate_ts``),
its delayed ``timestamp`` (possibly after the span), the ``delay_s`` between them and whether
it is in the log (``logged``: before the span's end). ``session_id`` and ``position`` are those
of the exposure (and click) it follows."""


class ConversionDelayConfig(BaseModel):
    """How long orders trail their clicks: ``delay ~ (1 - s_c) Exp(fast_mean_s) + s_c
    Weibull(slow_shape, slow_scale_s)`` with ``s_c`` the slow share of the item's category.

    ``s_c`` is drawn per category uniformly in ``slow_share +- slow_share_spread`` (clipped to
    [0, 1]). Off by default (``enabled=False``): orders keep their immediate times.

    Example:
        >>> ConversionDelayConfig().enabled
        False
        >>> ConversionDelayConfig(enabled=True).slow_share
        0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Delay orders (off: the log is unchanged).")
    fast_mean_s: float = Field(
        2 * HOUR_S, gt=0, description="Mean of the fast, exponential component (seconds)."
    )
    slow_scale_s: float = Field(
        3 * DAY_S, gt=0, description="Scale of the slow, Weibull component (seconds)."
    )
    slow_shape: float = Field(
        0.7, gt=0, le=5, description="Weibull shape of the slow component (< 1: a long tail)."
    )
    slow_share: float = Field(0.5, ge=0, le=1, description="Mean share of the slow component.")
    slow_share_spread: float = Field(
        0.35, ge=0, le=1, description="Per-category slow share: uniform in share +- spread."
    )

    def category_slow_share(self, n_categories: int, seed: int) -> np.ndarray:
        """``[C]`` slow-component share of each category (the stream's first draw).

        Example:
            >>> cfg = ConversionDelayConfig(enabled=True, slow_share=0.5, slow_share_spread=0.0)
            >>> cfg.category_slow_share(3, seed=0).tolist()
            [0.5, 0.5, 0.5]
        """
        rng = np.random.default_rng([seed, _STREAM_TAG])
        low, high = (
            self.slow_share - self.slow_share_spread,
            self.slow_share + self.slow_share_spread,
        )
        return np.clip(rng.uniform(low, high, size=n_categories), 0.0, 1.0)


def _draw_delays(config: ConversionDelayConfig, slow_share: np.ndarray, seed: int) -> np.ndarray:
    """``[R]`` delays (int64 seconds >= 1) for orders whose category slow share is given."""
    rng = np.random.default_rng([seed, _STREAM_TAG, 1])
    n = slow_share.shape[0]
    slow = rng.random(n) < slow_share
    fast_d = rng.exponential(config.fast_mean_s, size=n)
    slow_d = config.slow_scale_s * rng.weibull(config.slow_shape, size=n)
    return np.maximum(1, np.round(np.where(slow, slow_d, fast_d))).astype(np.int64)


def delay_conversions(
    config: ConversionDelayConfig,
    interactions: pl.DataFrame,
    item_category: np.ndarray,
    *,
    seed: int,
    end_timestamp: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Move every ``order`` row later by a drawn delay; orders past the span leave the log.

    Args:
        config: the delay distribution (must be enabled).
        interactions: the simulated log (``user_id, item_id, timestamp, event, session_id,
            position``, ...), sorted by time.
        item_category: ``[I]`` category index of item ``item_id - 1``.
        seed: the simulator seed (the delays use a stream of their own).
        end_timestamp: the span's end (exclusive): later orders are not logged.

    Returns:
        ``(interactions, conversions)``: the log with delayed orders, re-sorted by time (stable:
        rows of one timestamp keep their order), and the ground truth (:data:`CONVERSION_SCHEMA`,
        one row per order, in the log's original order).

    Example:
        >>> log = pl.DataFrame({"user_id": [1, 1], "item_id": [1, 1], "timestamp": [10, 20],
        ...     "event": ["click", "order"], "session_id": [1, 1], "position": [0, 0]})
        >>> cfg = ConversionDelayConfig(enabled=True)
        >>> out, truth = delay_conversions(cfg, log, np.zeros(1, int), seed=0, end_timestamp=99)
        >>> out["event"].to_list(), truth["logged"].to_list()
        (['click'], [False])
    """
    is_order = (interactions["event"] == "order").to_numpy()
    orders = interactions.filter(pl.Series(is_order))
    n_categories = int(item_category.max()) + 1 if item_category.size else 1
    share = config.category_slow_share(n_categories, seed)
    item_idx = orders["item_id"].to_numpy() - 1
    delay = _draw_delays(config, share[item_category[item_idx]], seed)
    immediate = orders["timestamp"].to_numpy()
    delayed = immediate + delay
    truth = pl.DataFrame(
        {
            "user_id": orders["user_id"],
            "item_id": orders["item_id"],
            "session_id": orders["session_id"],
            "position": orders["position"],
            "immediate_ts": immediate,
            "timestamp": delayed,
            "delay_s": delay,
            "logged": delayed < end_timestamp,
        },
        schema=CONVERSION_SCHEMA,
    )
    ts = interactions["timestamp"].to_numpy().copy()
    ts[is_order] = delayed
    moved = interactions.with_columns(pl.Series("timestamp", ts, dtype=pl.Int64))
    keep = ~is_order | (ts < end_timestamp)
    moved = moved.filter(pl.Series(keep)).sort("timestamp", maintain_order=True)
    return moved, truth
