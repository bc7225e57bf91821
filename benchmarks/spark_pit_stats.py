"""The ranker's point-in-time aggregate features on Spark (local[2]) against the single-machine
NumPy lookups, on simulated logs.

Per size (``--sizes``: simulated interaction rows, impressions included) one simulated log and
``--samples`` ranking samples (a user of a random event, a random item, a time in the last
quarter of the span: what the ranking window holds) are featurised twice in this process:
:func:`funnelrec.features.pit.dense.assemble_dense` (recall evidence off, so both compute the
same columns) and :func:`funnelrec.spark.pit_stats.aggregate_features` on a fresh ``local[2]``
session (its start-up reported apart). Reported: wall and CPU seconds of each (Spark's CPU is
the whole process tree: Python plus the JVM), the peak RSS of the process tree while each ran
(sampled every 0.2 s), the ratio, and whether every column is equal.

    .venv/bin/python benchmarks/spark_pit_stats.py [--sizes 1000000 3000000] [--samples 200000]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from _common import console, render, write_json
from spark_itemcf import tree_usage

NAME = "spark_pit_stats"
SPARK_CORES = 2


def measured(work: Callable[[], Any]) -> tuple[Any, float, float, int]:
    """``work()``'s result, wall seconds, CPU seconds of this process tree and its peak RSS."""
    pid = os.getpid()
    peak = 0
    done = threading.Event()
    ticks_before = sum(tree_usage(pid)[1].values())
    ticks_seen: dict[int, int] = {}

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            rss, ticks = tree_usage(pid)
            peak = max(peak, rss)
            ticks_seen.update(ticks)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    ticks_seen.update(tree_usage(pid)[1])
    cpu = (sum(ticks_seen.values()) - ticks_before) / os.sysconf("SC_CLK_TCK")
    return result, wall, cpu, peak


def ranking_samples(log: pl.DataFrame, n_items: int, n: int, seed: int) -> pl.DataFrame:
    """``n`` samples of the last quarter of the span: a user who acted, a random item."""
    rng = np.random.default_rng(seed)
    t = log["timestamp"].to_numpy()
    t_lo, t_hi = int(t.min()), int(t.max())
    start = t_hi - (t_hi - t_lo) // 4
    rows = rng.integers(0, log.height, n)
    return pl.DataFrame(
        {
            "query_id": np.arange(n, dtype=np.int64),
            "user_idx": log["user_idx"].to_numpy()[rows].astype(np.int64),
            "item_idx": rng.integers(0, n_items, n),
            "timestamp": rng.integers(start, t_hi + 1, n),
        }
    )


def measure(rows: int, n_samples: int) -> dict[str, Any]:
    from funnelrec.data.dataset import Dataset
    from funnelrec.data.simulator import SimulatorConfig, simulate
    from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
    from funnelrec.features.pit.dense import assemble_dense
    from funnelrec.features.pit.log import EventRules, LogArrays
    from funnelrec.spark.options import SparkOptions
    from funnelrec.spark.pit_stats import aggregate_features
    from funnelrec.spark.session import start_session

    sim = simulate(SimulatorConfig.for_interactions(rows, seed=0))
    data = Dataset.build(sim.interactions, sim.items)
    log = data.interactions
    samples = ranking_samples(log, data.n_items, n_samples, seed=0)
    config = PointInTimeConfig(recall_evidence=False)
    labelled = samples.head(2_000).with_columns(pl.lit(1).alias("label_click"))
    state = PointInTimeFeatures(config).fit(data, labelled)._state
    arrays = LogArrays.of(log, EventRules.of(config, state.positive_events))
    local, local_s, local_cpu, local_peak = measured(
        lambda: assemble_dense(config, state, samples, arrays)
    )
    console.print(f"{log.height:,} rows: numpy {local_s:.1f} s")
    start = time.perf_counter()
    spark = start_session(SparkOptions(master=f"local[{SPARK_CORES}]"))
    session_s = time.perf_counter() - start
    got, spark_s, spark_cpu, spark_peak = measured(
        lambda: aggregate_features(spark, config, state, samples, arrays)
    )
    spark.stop()
    console.print(f"{log.height:,} rows: spark {spark_s:.1f} s")
    return {
        "target_rows": rows,
        "log_rows": log.height,
        "samples": samples.height,
        "columns": int(local.shape[1]),
        "numpy_s": local_s,
        "numpy_cpu_s": local_cpu,
        "numpy_peak_mb": local_peak / 2**20,
        "spark_session_s": session_s,
        "spark_s": spark_s,
        "spark_cpu_s": spark_cpu,
        "spark_peak_mb": spark_peak / 2**20,
        "spark_over_numpy": spark_s / local_s,
        "equal": bool(np.array_equal(local, got)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--samples", type=int, default=200_000)
    args = parser.parse_args()
    results = [measure(rows, args.samples) for rows in args.sizes]
    render(
        f"point-in-time aggregates, {args.samples:,} samples: numpy vs Spark local[{SPARK_CORES}]",
        [
            "log rows",
            "numpy s",
            "Spark s",
            "Spark / numpy",
            "numpy peak MB",
            "Spark peak MB",
            "equal",
        ],
        [
            [
                f"{r['log_rows']:,}",
                f"{r['numpy_s']:.1f}",
                f"{r['spark_s']:.1f}",
                f"{r['spark_over_numpy']:.1f}x",
                f"{r['numpy_peak_mb']:,.0f}",
                f"{r['spark_peak_mb']:,.0f}",
                str(r["equal"]),
            ]
            for r in results
        ],
    )
    write_json(NAME, {"spark_cores": SPARK_CORES, "runs": results})


if __name__ == "__main__":
    main()
