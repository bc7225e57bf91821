"""Long-interest signal: how much a long behaviour sequence can add on the simulator's planted
periodic interests, measured against the ground truth (no model is trained).

A share of users get periodic categories (``SimulatorConfig.long_term``): bursts of a few days
that come back every 14-60 days. At the start of every burst (a *probe*), the target is the
category of the user's first positive event inside the burst, and three predictors are scored:
the categories of the last 50 events (what a short-sequence model sees), the categories of the
full history, and the oracle (the user's periodic categories in burst then: an upper bound on
what a long-sequence model could recover). The same probe times on users without periodic
categories are the control. A second table sweeps the history length N: the share of engaged
bursts whose category is missing from the last N events but present in the full history.

The default log is dense (1,000 users, ~2M positive events over 240 days: ~2,000 each), so
that bursts lie hundreds of events back; ``--users 2000 --rows 8000000`` gives ~240 each.

    .venv/bin/python benchmarks/long_interest_signal.py [--users 1000] [--rows 20000000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import polars as pl

from _common import console, render, write_json
from funnelrec.data.simulator import SimulatedData, SimulatorConfig, burst_windows, simulate
from funnelrec.data.simulator.periodic_stats import (
    burst_probes,
    category_events,
    history_probes,
    in_burst_share,
    oracle_hits,
    return_shares,
)

NAME = "long_interest_signal"
DAY = 86_400
SWEEP_N = (20, 50, 100, 200, 500, 1000)


def _config(args: argparse.Namespace) -> SimulatorConfig:
    base = SimulatorConfig.for_interactions(args.rows, seed=args.seed).model_dump()
    base.update(
        n_users=args.users,
        span_days=args.span_days,
        emit_impressions=False,
        long_term={"share_of_users": args.share},
    )
    return SimulatorConfig.model_validate(base)


def _control_probes(
    probes: pl.DataFrame, events: pl.DataFrame, planted: pl.Series, seed: int
) -> pl.DataFrame:
    """The planted probes' times on random users without periodic categories."""
    others = events.filter(~pl.col("user_id").is_in(planted.implode()))["user_id"].unique()
    pick = np.random.default_rng(seed).integers(0, others.len(), size=probes.height)
    return probes.with_columns(
        pl.Series("user_id", others.sort().to_numpy()[pick]),
        pl.lit(None, dtype=pl.String).alias("category"),
    )


def _predictor_rows(label: str, p: pl.DataFrame) -> list[list[Any]]:
    """``[group, predictor, probes, hit, set size, top-1]`` rows of one probe set."""
    added = p["target_in_history"] & ~p["target_in_last_n"]
    size_added = p["history_distinct"] - p["last_n_distinct"]
    rows = [
        [label, "last N categories", p.height, p["target_in_last_n"].mean(),
         p["last_n_distinct"].mean(), (p["target"] == p["last_n_top1"]).mean()],
        [label, "full-history categories", p.height, p["target_in_history"].mean(),
         p["history_distinct"].mean(), (p["target"] == p["history_top1"]).mean()],
        [label, "history minus last N (the gain)", p.height, added.mean(),
         size_added.mean(), None],
    ]  # fmt: skip
    if "oracle_hit" in p.columns:
        rows.append(
            [label, "periodic categories in burst (oracle)", p.height, p["oracle_hit"].mean(),
             p["oracle_size"].mean(), (p["target"] == p["category"]).mean()]
        )  # fmt: skip
    return rows


def _sweep(events: pl.DataFrame, probes: pl.DataFrame) -> list[list[Any]]:
    """Per history length N: among bursts the user engages with (and with more than N earlier
    events), the share whose category is missing from the last N but in the full history."""
    rows = []
    for n in SWEEP_N:
        p = history_probes(events, probes, last_n=n).filter(
            pl.col("engaged") & (pl.col("n_before") > n)
        )
        missed = (~p["cat_in_last_n"] & p["cat_in_history"]).mean()
        rows.append([n, p.height, p["cat_in_last_n"].mean(), p["cat_in_history"].mean(), missed])
    return rows


def _planting_stats(
    data: SimulatedData, events: pl.DataFrame, windows: pl.DataFrame
) -> dict[str, Any]:
    gt = data.periodic_interests
    planted_events = events.filter(pl.col("user_id").is_in(gt["user_id"].unique().implode()))
    pair_events = events.join(gt.select("user_id", "category"), on=["user_id", "category"])
    in_burst = in_burst_share(events, windows)
    return {
        "planted_users": gt["user_id"].n_unique(),
        "active_users": events["user_id"].n_unique(),
        "periodic_pairs": gt.height,
        "events": events.height,
        "events_per_user_median": float(events.group_by("user_id").len()["len"].median() or 0),
        "burst_time_share": float((gt["burst_s"] / gt["period_s"]).mean() or 0),
        "planted_pair_events_in_burst": in_burst,
        "planted_pair_share_of_planted_users_events": pair_events.height
        / max(planted_events.height, 1),
        "burst_events_share_of_all_events": pair_events.height * in_burst / events.height,
        "return_after_14d": return_shares(events, gt, 14 * DAY),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000, help="Users (5%% are cold).")
    parser.add_argument(
        "--rows", type=int, default=20_000_000, help="Target rows with impressions."
    )
    parser.add_argument("--span-days", type=float, default=240.0, help="Simulated days.")
    parser.add_argument("--share", type=float, default=0.3, help="long_term.share_of_users.")
    parser.add_argument("--last-n", type=int, default=50, help="The short history length.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    config = _config(args)
    start = time.perf_counter()
    data = simulate(config)
    sim_s = time.perf_counter() - start
    events = category_events(data)
    windows = burst_windows(data.periodic_interests, config.start_timestamp, config.end_timestamp)
    probes = burst_probes(windows, config.start_timestamp, config.end_timestamp)
    stats = _planting_stats(data, events, windows)
    console.print(f"simulated {data.interactions.height:,} positive rows in {sim_s:.1f} s; {stats}")

    planted = history_probes(events, probes, last_n=args.last_n)
    planted = pl.concat([planted, oracle_hits(planted, windows)], how="horizontal")
    control = history_probes(
        events,
        _control_probes(probes, events, data.periodic_interests["user_id"], args.seed),
        last_n=args.last_n,
    )
    keep = (pl.col("target").is_not_null()) & (pl.col("n_before") > args.last_n)
    table = _predictor_rows("planted users", planted.filter(keep))
    table += _predictor_rows("control users", control.filter(keep))
    columns = ["users", "predictor", "probes", "hit rate", "mean set size", "top-1"]
    render(
        f"Next-event category at burst starts (users with > {args.last_n} earlier events; "
        f"N = {args.last_n})",
        columns,
        table,
    )
    sweep = _sweep(events, probes)
    sweep_cols = ["N", "engaged bursts", "in last N", "in full history", "missing from last N"]
    render("Planted category at engaged burst starts vs history length", sweep_cols, sweep)
    write_json(
        NAME,
        {
            "config": config.model_dump(),
            "args": vars(args),
            "simulate_s": sim_s,
            "stats": stats,
            "predictors": [dict(zip(columns, row, strict=True)) for row in table],
            "sweep": [dict(zip(sweep_cols, row, strict=True)) for row in sweep],
        },
    )


if __name__ == "__main__":
    main()
