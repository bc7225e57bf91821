"""The ``position_bias`` block of metrics.json (opt-in: ``eval.position_bias``): when the log's
impressions carry positions, the estimated examination curve and item click rates before and
after removing it, side by side (docs/debiasing.md).

Biased: an item's logged CTR (clicks / impressions). Debiased: clicks over *examined*
impressions, ``clicks / sum(curve[position])`` (COEC, clicks over expected clicks), which no
longer credits an item for the slots the old system gave it. The curve comes from the random
slice (``is_rand``) when the log has one, else from per-item EM.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from funnelrec.rank.propensity import curve_by_em, curve_from_randomisation, positioned_impressions

MIN_IMPRESSIONS = 20  # an item's CTR from fewer impressions is left out of the comparison


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ranks by argsort; ties are rare for rates of different denominators)."""
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1]) if a.size > 2 else float("nan")


def _item_rates(shown: pl.DataFrame, curve: np.ndarray) -> dict[str, Any]:
    pos = shown["position"].to_numpy().astype(np.int64)
    click = shown["clicked"].to_numpy().astype(np.float64)
    item = np.unique(shown["item_id"].to_numpy(), return_inverse=True)[1]
    shows = np.bincount(item).astype(np.float64)
    clicks = np.bincount(item, weights=click)
    examined = np.bincount(item, weights=curve[pos])
    keep = shows >= MIN_IMPRESSIONS
    biased, debiased = clicks[keep] / shows[keep], clicks[keep] / examined[keep]
    return {
        "items": int(keep.sum()),
        "ctr_biased": float(clicks.sum() / shows.sum()),
        "ctr_debiased": float(clicks.sum() / examined.sum()),
        "item_rank_correlation": _rank_correlation(biased, debiased),
    }


def position_bias_report(interactions: pl.DataFrame, n_positions: int = 10) -> dict[str, Any]:
    """The curve and the biased vs debiased click rates of a canonical log.

    Args:
        interactions: canonical interactions (``position``, ``session_id`` and impression rows
            needed; ``is_rand`` used when present).
        n_positions: positions ``0..n_positions - 1`` are reported (later ones dropped).

    Returns:
        ``{"skipped": reason}``, or ``method``, ``impressions``, ``curve``, ``ctr_by_position``
        and the item click rates (:func:`_item_rates`).
    """
    if "position" not in interactions.columns or "session_id" not in interactions.columns:
        return {"skipped": "the log has no position / session_id column"}
    shown = positioned_impressions(interactions).filter(pl.col("position") < n_positions)
    if shown.height == 0:
        return {"skipped": "no impressions with a position"}
    pos = shown["position"].to_numpy().astype(np.int64)
    k = int(pos.max()) + 1
    click = shown["clicked"].to_numpy()
    random = shown["is_rand"].to_numpy() == 1 if "is_rand" in shown.columns else None
    if random is not None and random.any():
        method, curve = "randomisation", curve_from_randomisation(pos[random], click[random], k)
    else:
        method, curve = "em", curve_by_em(pos, click, shown["item_id"].to_numpy(), k)
    ctr = np.bincount(pos, weights=click, minlength=k) / np.maximum(np.bincount(pos), 1)
    return {
        "method": method,
        "impressions": shown.height,
        "curve": np.round(curve, 4).tolist(),
        "ctr_by_position": np.round(ctr, 5).tolist(),
        **_item_rates(shown, curve),
    }


__all__ = ["position_bias_report"]
