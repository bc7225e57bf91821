"""Logged exposure with known truth: slates chosen by a logging policy, clicks through a
position-based examination curve, a randomly exposed slice, and the true relevance kept apart
for evaluation only (docs/debiasing.md).

Everything is vectorised over requests: pools and Plackett-Luce slates are Gumbel top-k draws
(``argsort`` of ``score / temperature + Gumbel``), and the logged propensity of each shown
(item, position) mixes the random order's ``1 / C`` with the share of ``propensity_samples``
fresh Plackett-Luce draws that put that item there (the logged draw counted once).

Example:
    >>> log = simulate_exposure(ExposureConfig(n_users=50, n_items=40, n_requests=200))
    >>> log.slates.shape, log.clicks.shape, log.propensity.shape
    ((200, 6), (200, 6), (200, 6))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.exposure_config import ExposureConfig

_CHUNK = 2_048  # requests per vectorised block of pool draws ([chunk, n_items] keys)
_DRAW_CHUNK = 256  # requests per block of propensity draws ([chunk, samples, pool] keys)


@dataclass(frozen=True, slots=True)
class ExposureTruth:
    """What no log shows: for evaluation only, never for training.

    Attributes:
        relevance: ``[U, I]`` float64 true click probability at full examination (new items
            are the last ``n_new_items`` columns).
        curve: ``[K]`` planted examination probability per position (1 at position 0).
    """

    relevance: NDArray[np.float64]
    curve: NDArray[np.float64]

    def expected_clicks(self, users: NDArray[np.int64], slates: NDArray[np.int64]) -> float:
        """On-policy value: mean expected clicks per request of showing ``slates`` ``[R, K]``
        to ``users`` ``[R]`` (``sum_k curve[k] * relevance[u, slate_k]``)."""
        rel = self.relevance[users[:, None], slates]  # [R, K]
        return float((rel * self.curve[None, : slates.shape[1]]).sum(axis=1).mean())


@dataclass(frozen=True, slots=True)
class ExposureLog:
    """``R`` logged requests of ``K`` slots drawn from pools of ``C`` candidates.

    Attributes:
        users: ``[R]`` int64 user of each request.
        pools: ``[R, C]`` int64 candidate items (established items only).
        slates: ``[R, K]`` int64 shown items, position = column.
        clicks: ``[R, K]`` int8 clicks.
        is_random: ``[R]`` bool, the request was shown in a uniformly random order.
        explored: ``[R]`` bool, the explore slot showed a new item (epsilon-greedy).
        propensity: ``[R, K]`` float64 probability that the logging policy (the mixture of
            the Plackett-Luce and the random order, and of exploration) puts that item at
            that position in that request.
        policy_scores: ``[R, C]`` float64 the logging model's score of each pool item.
        slate_scores: ``[R, K]`` float64 the logging model's score of each shown item (a
            feature the system knows: regression-EM may use it).
        truth: the ground truth (evaluation only).
    """

    users: NDArray[np.int64]
    pools: NDArray[np.int64]
    slates: NDArray[np.int64]
    clicks: NDArray[np.int8]
    is_random: NDArray[np.bool_]
    explored: NDArray[np.bool_]
    propensity: NDArray[np.float64]
    policy_scores: NDArray[np.float64]
    slate_scores: NDArray[np.float64]
    truth: ExposureTruth


def _gumbel_top(rng: np.random.Generator, logits: NDArray[np.float64], k: int) -> NDArray[np.int64]:
    """``[..., k]`` column indexes of a Plackett-Luce draw over the last axis of ``logits``."""
    keys = logits + rng.gumbel(size=logits.shape)
    return np.argsort(-keys, axis=-1)[..., :k].astype(np.int64)


def _relevance(rng: np.random.Generator, config: ExposureConfig, n_items: int) -> NDArray:
    users = rng.normal(size=(config.n_users, config.dim)) / np.sqrt(config.dim)
    items = rng.normal(size=(n_items, config.dim))
    bias = rng.normal(scale=config.item_bias_sd, size=n_items)
    logit = config.affinity * users @ items.T + bias[None, :] + config.offset
    return 1.0 / (1.0 + np.exp(-logit))


def _marginals(
    rng: np.random.Generator,
    logits: NDArray[np.float64],
    shown: NDArray[np.int64],
    own: NDArray[np.bool_],
    m: int,
) -> NDArray[np.float64]:
    """``[r, K]`` share of ``m`` Plackett-Luce draws placing pool column ``shown[:, k]`` at
    position ``k``, the logged draw included where it was one (``own``)."""
    k = shown.shape[1]
    hits = np.zeros(shown.shape, dtype=np.float64)
    for lo in range(0, logits.shape[0], _DRAW_CHUNK):
        hi = min(lo + _DRAW_CHUNK, logits.shape[0])
        draws = _gumbel_top(rng, np.repeat(logits[lo:hi, None, :], m, axis=1), k)  # [r, m, K]
        hits[lo:hi] = (draws == shown[lo:hi, None, :]).sum(axis=1)
    return (hits + own[:, None]) / (m + 1.0)


def _pools(rng: np.random.Generator, config: ExposureConfig, weight: NDArray) -> NDArray:
    """``[R, C]`` popularity-weighted pools without replacement (Gumbel top-C)."""
    out = np.empty((config.n_requests, config.n_candidates), dtype=np.int64)
    log_w = np.log(weight)[None, :]
    for lo in range(0, config.n_requests, _CHUNK):
        hi = min(lo + _CHUNK, config.n_requests)
        out[lo:hi] = _gumbel_top(rng, np.repeat(log_w, hi - lo, axis=0), config.n_candidates)
    return out


def _explore(
    rng: np.random.Generator,
    config: ExposureConfig,
    slates: NDArray[np.int64],
    propensity: NDArray[np.float64],
) -> NDArray[np.bool_]:
    """Epsilon-greedy: put a uniformly drawn new item in the explore slot of some requests
    (in place) and log the mixture propensities; returns the explored flags."""
    r = slates.shape[0]
    explored: NDArray[np.bool_] = rng.random(size=(r,)) < config.explore_epsilon
    if config.explore_epsilon == 0:
        return explored
    slot = config.explore_slot % config.slate_size
    new = config.n_items + rng.integers(0, config.n_new_items, size=(r,))
    propensity[:, slot] *= 1.0 - config.explore_epsilon
    slates[explored, slot] = new[explored]
    propensity[explored, slot] = config.explore_epsilon / config.n_new_items
    return explored


def simulate_exposure(config: ExposureConfig) -> ExposureLog:
    """Simulate ``config.n_requests`` logged slates with clicks and their propensities.

    Args:
        config: sizes, curve, logging policy, random share, exploration.

    Returns:
        The :class:`ExposureLog` (its ``truth`` is for evaluation only).
    """
    rng = np.random.default_rng(config.seed)
    n_all = config.n_items + config.n_new_items
    relevance = _relevance(rng, config, n_all)
    noise = rng.normal(scale=config.policy_noise, size=(config.n_users, n_all))
    popularity = rng.pareto(1.5, size=config.n_items) + 1.0
    users = rng.integers(0, config.n_users, size=config.n_requests).astype(np.int64)
    pools = _pools(rng, config, popularity)
    push = np.zeros(n_all)
    push[: config.n_items] = config.policy_popularity * np.log(popularity)
    noise += push[None, :]  # the old model's error: noise plus its popularity push
    rel_pool = relevance[users[:, None], pools]
    scores = np.log(rel_pool / (1.0 - rel_pool)) + noise[users[:, None], pools]
    is_random = rng.random(config.n_requests) < config.random_share
    # The random slice is the same Plackett-Luce draw with every logit 0: a uniform order.
    logits = scores / config.temperature
    shown = _gumbel_top(rng, np.where(is_random[:, None], 0.0, logits), config.slate_size)
    # The logging policy is the mixture of both, so a target policy has support wherever the
    # random slice does: its propensity is share / C + (1 - share) * P_PL(item at k).
    p_pl = np.zeros(shown.shape)
    if config.random_share < 1:
        p_pl = _marginals(rng, logits, shown, ~is_random, config.propensity_samples)
    propensity = config.random_share / config.n_candidates + (1.0 - config.random_share) * p_pl
    slates = np.take_along_axis(pools, shown, axis=1)
    explored = _explore(rng, config, slates, propensity)
    rel_shown = relevance[users[:, None], slates]
    slate_scores = np.log(rel_shown / (1.0 - rel_shown)) + noise[users[:, None], slates]
    curve = config.curve_values()
    p_click = curve[None, :] * rel_shown
    clicks = (rng.random(p_click.shape) < p_click).astype(np.int8)
    return ExposureLog(
        users=users,
        pools=pools,
        slates=slates,
        clicks=clicks,
        is_random=is_random,
        explored=explored,
        propensity=propensity,
        policy_scores=scores,
        slate_scores=slate_scores,
        truth=ExposureTruth(relevance=relevance, curve=curve),
    )


def exposure_interactions(log: ExposureLog, start_timestamp: int = 1_700_000_000) -> pl.DataFrame:
    """The log as canonical interactions: one ``impression`` row per shown slot and one
    ``click`` row per click, each with ``session_id`` (the request), ``position`` and
    ``is_rand`` (1 = randomly exposed request, KuaiRand's column); a request a minute.

    Example:
        >>> log = simulate_exposure(ExposureConfig(n_users=20, n_items=30, n_requests=10))
        >>> frame = exposure_interactions(log)
        >>> frame.filter(pl.col("event") == "impression").height
        60
    """
    r, k = log.slates.shape
    request = np.repeat(np.arange(r, dtype=np.int64), k)
    base = pl.DataFrame(
        {
            "user_id": np.repeat(log.users, k),
            "item_id": log.slates.ravel(),
            "timestamp": start_timestamp + 60 * request,
            "value": np.ones(r * k, dtype=np.float32),
            "session_id": request,
            "position": np.tile(np.arange(k, dtype=np.int32), r),
            "is_rand": np.repeat(log.is_random.astype(np.int8), k),
            "clicked": log.clicks.ravel().astype(bool),
        }
    )
    impressions = base.with_columns(event=pl.lit("impression"))
    clicks = base.filter(pl.col("clicked")).with_columns(event=pl.lit("click"))
    columns = ["user_id", "item_id", "timestamp", "event", "value", "session_id", "position"]
    return (
        pl.concat([impressions, clicks])
        .select([*columns, "is_rand"])
        .sort(["timestamp", "position", "event"], descending=[False, False, True])
    )


__all__ = ["ExposureLog", "ExposureTruth", "exposure_interactions", "simulate_exposure"]
