"""Headline statistics of a simulated (or any canonical) dataset, for reports and benchmarks."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.data.simulator.core import SimulatedData
from funnelrec.data.simulator.events import EVENTS


def summarize(data: SimulatedData) -> dict[str, float | int | list[float]]:
    """Sizes, event counts, CTR by position, funnel rates and click concentration.

    Args:
        data: the three canonical tables.

    Returns:
        A flat JSON-ready dict: ``rows, users, active_users, cold_users, items, clicked_items,
        sessions``, one count per event, ``ctr, cart_per_click, order_per_cart,
        ctr_by_position`` (list, position 0 first) and ``top1pct_click_share`` (share of
        clicks on the most-clicked 1% of catalogue items).

    Example:
        >>> from funnelrec.data.simulator import SimulatorConfig, simulate
        >>> summarize(simulate(SimulatorConfig.for_interactions(5_000)))["users"]
        100
    """
    inter = data.interactions
    counts = dict(inter.group_by("event").len().iter_rows())
    n = {e: int(counts.get(e, 0)) for e in EVENTS}
    by_pos = (
        inter.filter(pl.col("event").is_in(["impression", "click"]))
        .group_by("position")
        .agg(
            (pl.col("event") == "click").sum().alias("clicks"),
            (pl.col("event") == "impression").sum().alias("impressions"),
        )
        .sort("position")
    )
    ctr_pos = (by_pos["clicks"] / by_pos["impressions"].clip(lower_bound=1)).to_list()
    clicks = inter.filter(pl.col("event") == "click")
    per_item = np.sort(clicks.group_by("item_id").len()["len"].to_numpy())[::-1]
    top = max(1, data.items.height // 100)
    active = inter["user_id"].n_unique()
    return {
        "rows": inter.height,
        "users": data.users.height,
        "active_users": active,
        "cold_users": data.users.height - active,
        "items": data.items.height,
        "clicked_items": int(per_item.shape[0]),
        "sessions": inter["session_id"].n_unique(),
        **{f"{e}s": n[e] for e in EVENTS},
        "ctr": n["click"] / max(n["impression"], 1),
        "cart_per_click": n["cart"] / max(n["click"], 1),
        "order_per_cart": n["order"] / max(n["cart"], 1),
        "ctr_by_position": [round(float(c), 5) for c in ctr_pos],
        "top1pct_click_share": float(per_item[:top].sum() / max(per_item.sum(), 1)),
    }
