"""Delayed conversions: a naive model trained on label-window labels against DFM, FSIW,
ES-DFM and DEFER, judged against the simulator's *eventual* conversions.

Data: the simulator (``--sim-interactions`` rows, 60 days) with
``SimulatorConfig.conversion_delay`` on: each order trails its click by a delay from an
exponential (mean 2 h) + Weibull (shape 0.7, scale 3 days) mixture whose slow share depends on
the item's category; orders past the span leave the log but stay in the ground truth.

Task: post-click conversion (CVR), as in the delayed-feedback literature: samples are clicks,
the eventual label is whether the click ever converts (credited by the ranker's own rule,
``rank.delay.censor.conversion_delays``: same (user, item), the latest exposure). Features:
item and item category ids (embeddings; the simulator's order probability depends on item
quality and a per-(user, item) taste that no id feature can learn, its delay on the category,
so the AUCs are low for every method and calibration is the measure that separates them).

Protocol: training cutoff at day 45; train clicks before it whose label window has closed,
test clicks after it. At each label window (1 h, 1 day, 7 days) every method sees what a job at
the cutoff sees (``rank.delay.methods.replay``): the window labels, and the conversions that
came later but before the cutoff. ``oracle`` trains on the eventual labels of the same clicks
(the bound no method can pass). Metrics on the test clicks against the eventual truth:
calibration = mean predicted / mean eventual rate (1 = unbiased; the naive model's < 1 is its
under-prediction), AUC and LogLoss.

    .venv/bin/python benchmarks/delayed_conversion.py [--sim-interactions 2000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import polars as pl
import torch

from _common import console, render, write_json
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.conversion_delay import ConversionDelayConfig
from funnelrec.metrics.rank import auc, calibration, logloss
from funnelrec.rank.delay.censor import conversion_delays
from funnelrec.rank.delay.losses import DelayLoss
from funnelrec.rank.delay.methods import (
    METHODS,
    DelayMethodConfig,
    fit_method,
    replay,
)
from funnelrec.rank.delay.model import fit_delay_model, predict_cvr
from funnelrec.rank.labels import DAY_S, HOUR_S, TaskLabel

WINDOWS = {"1h": HOUR_S, "1d": DAY_S, "7d": 7 * DAY_S}
CUTOFF_DAY = 45
ORDER = TaskLabel(events=("order",), window_s=None, after=None)


def _clicks(n: int, seed: int) -> tuple[dict[str, Any], int]:
    """Click features, times and eventual delays; and the simulator's start time."""
    base = SimulatorConfig.for_interactions(n, seed=seed)
    cfg = base.model_copy(update={"conversion_delay": ConversionDelayConfig(enabled=True)})
    data = simulate(cfg)
    log = data.interactions
    clicks = log.filter(pl.col("event") == "click").select(
        (pl.col("user_id") - 1).alias("user_idx"),
        (pl.col("item_id") - 1).alias("item_idx"),
        "timestamp",
    )
    truth = data.conversions.select(
        (pl.col("user_id") - 1).alias("user_idx"),
        (pl.col("item_id") - 1).alias("item_idx"),
        "timestamp",
        pl.lit("order").alias("event"),
    )
    delay = conversion_delays(clicks, truth, ORDER)
    codes = data.items["category"].cast(pl.Categorical).to_physical().to_numpy()
    item = clicks["item_idx"].to_numpy()
    # No user id: the simulator's order probability depends on the item (quality) and a
    # per-(user, item) taste no id embedding can learn; a user embedding only overfits.
    x = np.stack([item, codes[item]], axis=1).astype(np.int64)
    cards = (data.items.height, int(codes.max()) + 1)
    out = {"x": x, "t": clicks["timestamp"].to_numpy(), "delay": delay, "cards": cards}
    out["logged_share"] = float(data.conversions["logged"].mean())
    return out, cfg.start_timestamp


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"calibration": calibration(y, p), "auc": auc(y, p), "logloss": logloss(y, p)}


def _window_rows(
    clicks: dict[str, Any], cutoff: int, window_s: float, cfg: DelayMethodConfig, seed: int
) -> list[dict[str, Any]]:
    x, t, delay, cards = clicks["x"], clicks["t"], clicks["delay"], clicks["cards"]
    test = t >= cutoff
    y_test = np.isfinite(delay[test]).astype(np.float64)
    train = replay(x[~test], t[~test], delay[~test], cutoff=cutoff, window_s=window_s)
    rows = []
    for method in METHODS:
        started = time.perf_counter()
        model = fit_method(method, train, cards, cfg, seed=seed)
        scores = _scores(y_test, predict_cvr(model, x[test]))
        rows.append({"method": method, **scores, "fit_s": time.perf_counter() - started})
    kept = ~test & (t + window_s <= cutoff)
    eventual = np.isfinite(delay[kept]).astype(np.float32)
    targets = {"label": eventual, "weight": np.ones_like(eventual)}
    oracle = fit_delay_model(x[kept], targets, DelayLoss("bce"), cards, cfg.fit, seed=seed)
    rows.append({"method": "oracle", **_scores(y_test, predict_cvr(oracle, x[test]))})
    stats = {
        "train_clicks": int(kept.sum()),
        "window_positive_rate": float(train.window_label.mean()),
        "eventual_rate_train": float(eventual.mean()),
        "late_share": float(np.mean(delay[np.isfinite(delay)] > window_s)),
    }
    return [{**r, **stats} for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sim-interactions", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # small models: one thread beats contention
    started = time.perf_counter()
    clicks, start = _clicks(args.sim_interactions, args.seed)
    cutoff = start + CUTOFF_DAY * int(DAY_S)
    test = clicks["t"] >= cutoff
    console.print(
        f"{clicks['t'].shape[0]} clicks ({int(test.sum())} test), eventual CVR "
        f"{np.isfinite(clicks['delay']).mean():.4f}; {clicks['logged_share']:.3f} of the "
        "orders land inside the span"
    )
    cfg = DelayMethodConfig()
    results: dict[str, list[dict[str, Any]]] = {}
    for name, window_s in WINDOWS.items():
        results[name] = _window_rows(clicks, cutoff, window_s, cfg, args.seed)
        first = results[name][0]
        render(
            f"label window {name}: {first['late_share']:.1%} of conversions come later; "
            f"window rate {first['window_positive_rate']:.4f} vs eventual "
            f"{first['eventual_rate_train']:.4f}",
            ["method", "calibration", "AUC", "LogLoss"],
            [[r["method"], r["calibration"], r["auc"], r["logloss"]] for r in results[name]],
        )
    write_json(
        "delayed_conversion",
        {
            "sim_interactions": args.sim_interactions,
            "seed": args.seed,
            "cutoff_day": CUTOFF_DAY,
            "windows": results,
            "total_s": time.perf_counter() - started,
        },
    )


if __name__ == "__main__":
    main()
