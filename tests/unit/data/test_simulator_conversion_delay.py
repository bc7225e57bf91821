"""Delayed conversions in the simulator: off changes nothing, on moves only orders."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.conversion_delay import ConversionDelayConfig

CFG = SimulatorConfig.for_interactions(20_000, seed=4)
ON = CFG.model_copy(update={"conversion_delay": ConversionDelayConfig(enabled=True)})


def test_off_by_default_and_orders_move_later_when_on() -> None:
    off, on = simulate(CFG), simulate(ON)
    assert off.conversions.height == 0
    # Everything but the orders is the same rows (the delays draw from their own stream).
    rest = [d.interactions.filter(pl.col("event") != "order") for d in (off, on)]
    assert rest[0].sort(rest[0].columns).equals(rest[1].sort(rest[1].columns))
    truth = on.conversions
    assert truth.height == off.interactions.filter(pl.col("event") == "order").height
    assert (truth["delay_s"] >= 1).all()
    assert (truth["timestamp"] == truth["immediate_ts"] + truth["delay_s"]).all()
    logged = on.interactions.filter(pl.col("event") == "order")
    assert logged.height == int(truth["logged"].sum()) < truth.height  # a tail leaves the log
    assert (logged["timestamp"] < ON.end_timestamp).all()
    assert on.interactions["timestamp"].is_sorted()


def test_slow_share_per_category_shapes_the_tail() -> None:
    cfg = ConversionDelayConfig(enabled=True, slow_share=0.5, slow_share_spread=0.5)
    share = cfg.category_slow_share(200, seed=0)
    assert share.min() >= 0 and share.max() <= 1 and np.ptp(share) > 0.5
    assert ConversionDelayConfig(enabled=True, slow_share_spread=0).category_slow_share(
        3, seed=1
    ).tolist() == [0.5, 0.5, 0.5]
