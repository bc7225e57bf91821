"""ItemCF fit time and peak memory at 0.1M, 1M and 10M simulated positive interactions.

Each size runs in fresh subprocesses: one simulates (``SimulatorConfig.for_positives(n)``: n
click/cart/order rows, the user x item matrix ItemCF is fitted on)
and writes the tables to a temporary Parquet folder; a second one loads them, builds the
Dataset, warms numba up on a tiny dataset, records its RSS, then fits the default
time-decayed ``ItemCF`` and reports

* fit time (median of ``--repeats`` fits),
* peak RSS of the process (``resource.getrusage``),
* the fit's own peak: peak RSS during the first fit minus the RSS after loading (the kernel's
  high-water mark is reset first through ``/proc/self/clear_refs`` where Linux allows it, so
  the simulator and the Dataset build do not mask it).

The fit processes run with ``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-wait-policy default``
(see benchmarks/itemcf_fit.py).

    .venv/bin/python benchmarks/itemcf_scaling.py [--quick] [--repeats 3] [--sizes 100000 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numba

from _common import console, render, write_json

NAME = "itemcf_scaling"
SIZES = (100_000, 1_000_000, 10_000_000)
MB = 1024 * 1024


def rss_now() -> int:
    """Current resident set size in bytes (Linux /proc; falls back to the peak elsewhere)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        pages = int(statm.read_text().split()[1])
        return pages * resource.getpagesize()
    return peak_rss()


def peak_rss() -> int:
    """Peak resident set size in bytes so far (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_simulate(n: int, folder: Path) -> None:
    from funnelrec.data.simulator import SimulatorConfig, simulate

    sim = simulate(SimulatorConfig.for_positives(n, seed=0))
    sim.interactions.write_parquet(folder / "interactions.parquet")
    sim.items.write_parquet(folder / "items.parquet")


def child_fit(folder: Path, repeats: int) -> dict[str, Any]:
    import numpy as np
    import polars as pl

    from funnelrec.data.dataset import Dataset
    from funnelrec.recall.itemcf import ItemCF, ItemCFConfig

    rng = np.random.default_rng(0)
    tiny = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2],
            "item_id": [1, 2, 1, 3],
            "timestamp": [0, 1, 2, 3],
            "event": ["click"] * 4,
            "value": [1.0] * 4,
        }
    )
    cfg = ItemCFConfig()
    ItemCF(cfg).fit(Dataset.build(tiny), rng=rng)  # JIT (or cache load) outside the numbers

    interactions = pl.read_parquet(folder / "interactions.parquet")
    items = pl.read_parquet(folder / "items.parquet")
    data = Dataset.build(interactions, items)
    _ = data.positives, data.item_created_at
    rss_loaded = rss_now()
    peak_before = peak_rss()
    exact = reset_peak()
    start = time.perf_counter()
    model = ItemCF(cfg).fit(data, rng=rng)
    first = time.perf_counter() - start
    peak_after = peak_rss()
    nnz = int((model.neighbor_idx >= 0).sum())
    del model
    times = [first]
    for _ in range(repeats - 1):
        start = time.perf_counter()
        ItemCF(cfg).fit(data, rng=rng)
        times.append(time.perf_counter() - start)
    fit_peak = max(0, peak_after - rss_loaded)
    return {
        "rows": interactions.height,
        "positives": data.positives.height,
        "users": data.n_users,
        "items": data.n_items,
        "neighbor_entries": nnz,
        "threads": numba.get_num_threads(),
        "fit_s": statistics.median(times),
        "fit_times_s": times,
        "rss_after_load_mb": rss_loaded / MB,
        "peak_rss_total_mb": max(peak_after, peak_before) / MB,
        "fit_peak_above_loaded_mb": fit_peak / MB,
        "fit_peak_exact": exact or peak_after > peak_before,
    }


def run_child(args: list[str], omp_wait_policy: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if omp_wait_policy != "default":
        env["OMP_WAIT_POLICY"] = omp_wait_policy.upper()
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env
    )
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10M size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument(
        "--omp-wait-policy",
        choices=("passive", "default"),
        default="passive",
        help="OMP_WAIT_POLICY of the fit processes (as in benchmarks/itemcf_fit.py)",
    )
    parser.add_argument("--child-simulate", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_simulate is not None:
        child_simulate(args.child_simulate, args.folder)
        return
    if args.child_fit:
        sys.stdout.write(json.dumps(child_fit(args.folder, args.repeats)) + "\n")
        return

    sizes = args.sizes or [n for n in SIZES if not (args.quick and n >= 10_000_000)]
    results = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            run_child(["--child-simulate", str(n), "--folder", tmp], args.omp_wait_policy)
            console.print(f"simulated {n:,} positives in {time.perf_counter() - start:.1f} s")
            line = run_child(
                ["--child-fit", "--folder", tmp, "--repeats", str(args.repeats)],
                args.omp_wait_policy,
            )
        result = json.loads(line.strip().splitlines()[-1])
        result["target_rows"] = n
        results.append(result)

    if not console.is_terminal:
        console.width = 160
    render(
        f"ItemCF fit scaling (default config, {results[0]['threads']} threads, "
        f"median of {args.repeats} fits, one fresh process per size)",
        [
            "simulated positives",
            "positives",
            "users",
            "items",
            "fit s",
            "RSS after load MB",
            "fit peak above load MB",
            "peak RSS total MB",
            "bytes / positive",
        ],
        [
            [
                f"{r['rows']:,}",
                f"{r['positives']:,}",
                f"{r['users']:,}",
                f"{r['items']:,}",
                r["fit_s"],
                f"{r['rss_after_load_mb']:.0f}",
                f"{r['fit_peak_above_loaded_mb']:.0f}" + ("" if r["fit_peak_exact"] else " (<=)"),
                f"{r['peak_rss_total_mb']:.0f}",
                f"{r['fit_peak_above_loaded_mb'] * MB / max(r['positives'], 1):.0f}",
            ]
            for r in results
        ],
    )
    console.print(
        f"OMP_WAIT_POLICY of the fit processes: {args.omp_wait_policy}; 1-min load average at "
        f"end: {os.getloadavg()[0]:.2f} (shared machine)"
    )
    write_json(
        NAME,
        {"repeats": args.repeats, "omp_wait_policy": args.omp_wait_policy, "results": results},
    )


if __name__ == "__main__":
    main()
