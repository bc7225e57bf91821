"""Simulator speed: rows generated per second at 0.1M and 1M target rows (10M with --full).

Each size is simulated ``--repeats`` times after a small warm-up call (which loads or compiles
the numba kernel; its time is reported separately) and the median wall time is kept. Peak RSS
is the process high-water mark after that size (sizes run in ascending order). The dataset
statistics of each size (users, items, clicks, CTR by position, funnel rates) go to the JSON too.
Target: 1M rows in under 10 s.

    .venv/bin/python benchmarks/simulator_speed.py [--full] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

from _common import console, render, write_json
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.summary import summarize

NAME = "simulator_speed"
SIZES = (100_000, 1_000_000)
FULL_SIZES = (10_000_000,)
TARGET_1M_S = 10.0


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _label(n: int) -> str:
    return f"{n / 1e6:g}M"


def _time_one(n: int, repeats: int) -> tuple[list[float], dict]:
    config = SimulatorConfig.for_interactions(n, seed=0)
    times = []
    data = None
    for _ in range(repeats):
        del data  # keep one dataset alive at a time
        start = time.perf_counter()
        data = simulate(config)
        times.append(time.perf_counter() - start)
    return times, summarize(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Also generate 10M rows.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per size (10M runs once).")
    args = parser.parse_args()

    start = time.perf_counter()
    simulate(SimulatorConfig.for_interactions(5_000, seed=0))
    warmup_s = time.perf_counter() - start
    console.print(f"warm-up (numba compile or cache load + 5k rows): {warmup_s:.2f} s")

    results = []
    for n in SIZES + (FULL_SIZES if args.full else ()):
        repeats = 1 if n >= 10_000_000 else args.repeats
        times, stats = _time_one(n, repeats)
        seconds = statistics.median(times)
        results.append(
            {
                "target_rows": n,
                "rows": stats["rows"],
                "seconds_median": seconds,
                "seconds_all": times,
                "rows_per_s": stats["rows"] / seconds,
                "peak_rss_mib": _peak_rss_mib(),
                "stats": stats,
            }
        )
        console.print(f"{n:,} target rows: {seconds:.2f} s")
    render(
        "Simulator speed (median wall time)",
        ["target", "rows", "seconds", "rows/s", "peak RSS MiB"],
        [
            [
                _label(r["target_rows"]),
                f"{r['rows']:,}",
                r["seconds_median"],
                f"{r['rows_per_s']:,.0f}",
                f"{r['peak_rss_mib']:,.0f}",
            ]
            for r in results
        ],
    )
    header = ["statistic", *(_label(r["target_rows"]) for r in results)]
    counts = ("users", "cold_users", "items", "clicked_items", "sessions")
    counts += ("impressions", "clicks", "carts", "orders")
    rates = ("ctr", "cart_per_click", "order_per_cart", "top1pct_click_share")
    render(
        "Simulated datasets",
        header,
        [[k, *(f"{r['stats'][k]:,}" for r in results)] for k in counts]
        + [[k, *(float(r["stats"][k]) for r in results)] for k in rates],
    )
    n_pos = len(results[0]["stats"]["ctr_by_position"])
    render(
        "CTR by slate position",
        ["position", *header[1:]],
        [[p, *(r["stats"]["ctr_by_position"][p] for r in results)] for p in range(n_pos)],
    )

    one_m = next(r for r in results if r["target_rows"] == 1_000_000)
    passed = one_m["seconds_median"] < TARGET_1M_S
    console.print(
        f"1M rows: {one_m['seconds_median']:.2f} s (target < {TARGET_1M_S:.0f} s): "
        + ("[green]pass[/green]" if passed else "[red]fail[/red]")
    )
    write_json(
        NAME,
        {
            "warmup_s": warmup_s,
            "target_1m_s": TARGET_1M_S,
            "target_1m_pass": passed,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
