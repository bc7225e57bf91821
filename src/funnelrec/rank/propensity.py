"""Position propensities from click logs, and the clipped inverse-propensity weights built on
them (docs/debiasing.md).

Two estimators of the examination curve ``theta[k]`` of the position-based model
``P(click | item at k) = theta[k] * relevance``, both normalised to ``theta[0] = 1`` (only the
ratios are identified):

* :func:`curve_from_randomisation`: on randomly ordered traffic relevance is independent of
  the position, so the click-through rate of each position divided by that of position 0 is
  the curve (Joachims et al. 2017, result randomisation).
* :func:`curve_by_em`: regression-EM (Wang et al., WSDM 2018) on the ordinary, biased log.
  The E-step splits each non-click into "not examined" and "examined, not relevant"; the
  M-step sets ``theta[k]`` to the mean examination posterior at ``k`` and fits the relevance
  ``gamma`` either per group (classical EM) or, given ``features``, by a logistic regression on
  the soft relevance labels (the *regression* in regression-EM, which generalises to pairs
  never seen twice).

Example:
    >>> pos = np.tile(np.arange(3), 4000)
    >>> rng = np.random.default_rng(0)
    >>> clicks = rng.random(pos.size) < 0.5 * np.array([1.0, 0.6, 0.3])[pos]
    >>> np.round(curve_from_randomisation(pos, clicks, 3), 1).tolist()
    [1.0, 0.6, 0.3]
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from sklearn.linear_model import LogisticRegression

_EPS = 1e-6


def _per_position(
    position: NDArray[np.int64], value: NDArray[np.float64], n_positions: int
) -> NDArray[np.float64]:
    """Mean of ``value`` at each position ``[n_positions]`` (nan where none is shown)."""
    shown = np.bincount(position, minlength=n_positions)[:n_positions].astype(np.float64)
    total = np.bincount(position, weights=value, minlength=n_positions)[:n_positions]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / shown, dtype=np.float64)


def curve_from_randomisation(
    position: ArrayLike, clicks: ArrayLike, n_positions: int
) -> NDArray[np.float64]:
    """``[n_positions]`` the examination curve from randomly ordered impressions.

    Args:
        position: ``[N]`` 0-based positions of impressions of the random slice only.
        clicks: ``[N]`` clicks (0/1).
        n_positions: positions to report.

    Returns:
        CTR at each position over CTR at position 0.
    """
    pos = np.asarray(position, dtype=np.int64)
    ctr = _per_position(pos, np.asarray(clicks, dtype=np.float64), n_positions)
    return ctr / ctr[0]


class _RelevanceRegression:
    """The M-step of regression-EM: a logistic regression on ``features`` fitted to the soft
    relevance labels (each row twice, label 1 / 0 weighted by the soft label: the E-step's
    expected log-likelihood). Warm-started, so each EM step costs a few solver iterations."""

    def __init__(self, features: sp.csr_matrix) -> None:
        self.features = features.tocsr()
        self.stacked = sp.vstack([self.features, self.features]).tocsr()
        n = self.features.shape[0]
        self.labels = np.concatenate([np.ones(n), np.zeros(n)])
        self.model = LogisticRegression(C=1.0, max_iter=100, warm_start=True)

    def __call__(self, soft: NDArray[np.float64]) -> NDArray[np.float64]:
        weight = np.concatenate([soft, 1.0 - soft]) + _EPS
        self.model.fit(self.stacked, self.labels, sample_weight=weight)
        return np.asarray(self.model.predict_proba(self.features)[:, 1], dtype=np.float64)


def _group_means(
    soft: NDArray[np.float64], group: NDArray[np.int64], prior: tuple[float, float]
) -> NDArray[np.float64]:
    """The M-step of classical EM: ``[N]`` the Beta-smoothed mean soft label of each group."""
    a, b = prior
    total = np.bincount(group, weights=soft)
    count = np.bincount(group).astype(np.float64)
    return np.asarray(((total + a) / (count + a + b))[group], dtype=np.float64)


def curve_by_em(
    position: ArrayLike,
    clicks: ArrayLike,
    group: ArrayLike,
    n_positions: int,
    *,
    features: sp.csr_matrix | None = None,
    iterations: int = 30,
    prior: tuple[float, float] = (1.0, 1.0),
) -> NDArray[np.float64]:
    """``[n_positions]`` the examination curve by (regression-)EM on a biased log.

    Args:
        position: ``[N]`` 0-based positions.
        clicks: ``[N]`` clicks (0/1).
        group: ``[N]`` integer key of the relevance (an item, or a query-item pair).
        n_positions: positions to report.
        features: optional ``[N, F]`` sparse features; relevance is then a logistic
            regression on them (regression-EM) instead of one value per group.
        iterations: EM steps.
        prior: Beta(a, b) pseudo-counts of the per-group relevance (smooths rare groups).

    Returns:
        ``theta / theta[0]``.
    """
    pos = np.asarray(position, dtype=np.int64)
    c = np.asarray(clicks, dtype=np.float64)
    g = np.unique(np.asarray(group), return_inverse=True)[1].astype(np.int64)
    regression = None if features is None else _RelevanceRegression(features)
    theta = np.full(n_positions, 0.5)
    gamma = np.full(pos.shape[0], max(c.mean(), _EPS) * 2.0)
    gamma = np.clip(gamma, _EPS, 1.0 - _EPS)
    for _ in range(iterations):
        t = theta[pos]
        miss = np.maximum(1.0 - t * gamma, _EPS)
        examined = c + (1.0 - c) * t * (1.0 - gamma) / miss  # P(E = 1 | c)
        relevant = c + (1.0 - c) * (1.0 - t) * gamma / miss  # P(R = 1 | c)
        theta = np.clip(_per_position(pos, examined, n_positions), _EPS, 1.0)
        fitted = _group_means(relevant, g, prior) if regression is None else regression(relevant)
        gamma = np.clip(fitted, _EPS, 1.0 - _EPS)
    return theta / theta[0]


def ips_weights(position: ArrayLike, curve: ArrayLike, clip: float = 0.05) -> NDArray[np.float64]:
    """``[N]`` inverse-propensity weights ``1 / max(curve[position], clip)``.

    Clipping bounds the variance a rarely examined position would add (at the price of a
    bias towards the top positions).

    Example:
        >>> ips_weights([0, 1, 2], [1.0, 0.5, 0.01], clip=0.1).tolist()
        [1.0, 2.0, 10.0]
    """
    if not 0 < clip <= 1:
        raise ValueError(f"clip must be in (0, 1], got {clip}")
    p = np.asarray(curve, dtype=np.float64)[np.asarray(position, dtype=np.int64)]
    return np.asarray(1.0 / np.maximum(p, clip), dtype=np.float64)


def snips_normalise(weights: ArrayLike) -> NDArray[np.float64]:
    """``[N]`` self-normalised weights (mean 1): SNIPS trades IPS's unbiasedness for a
    variance that no single large weight can blow up.

    Example:
        >>> snips_normalise([1.0, 3.0]).tolist()
        [0.5, 1.5]
    """
    w = np.asarray(weights, dtype=np.float64)
    return np.asarray(w * (w.shape[0] / w.sum()), dtype=np.float64)


def positioned_impressions(interactions: pl.DataFrame) -> pl.DataFrame:
    """Impressions that carry a position, each with its click: ``session_id, user_id,
    item_id, position, clicked`` (+ ``is_rand`` when the log has it).

    A click belongs to the impression with the same session, item and position (MIND,
    KuaiRand, the simulators log it so).
    """
    keys = ["session_id", "user_id", "item_id", "position"]
    rows = interactions.filter(pl.col("position").is_not_null())
    extra = ["is_rand"] if "is_rand" in rows.columns else []
    shown = rows.filter(pl.col("event") == "impression").select([*keys, *extra]).unique(keys)
    clicked = (
        rows.filter(pl.col("event") == "click")
        .select(keys)
        .unique()
        .with_columns(clicked=pl.lit(1, dtype=pl.Int8))
    )
    return shown.join(clicked, on=keys, how="left").with_columns(pl.col("clicked").fill_null(0))


__all__ = [
    "curve_by_em",
    "curve_from_randomisation",
    "ips_weights",
    "positioned_impressions",
    "snips_normalise",
]
