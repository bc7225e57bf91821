"""ItemCF fit on Spark (local[2]) against the numba kernel at 1M / 10M / 50M simulated positives.

Each size is simulated once (``SimulatorConfig.for_positives(n)``: n click/cart/order rows) into
a hive-partitioned Parquet folder (``interactions/date=YYYY-MM-DD/``), then fitted in two fresh
processes with the default ``ItemCFConfig``:

* **numba**: load the folder, build the Dataset, warm the JIT up on a tiny log, fit;
* **spark**: load the folder and build the Dataset (the driver needs the vocabularies), start
  a ``local[2]`` session, then Spark reads the partitioned folder itself, maps the ids through
  the vocabularies and runs :func:`funnelrec.spark.itemcf.fit_itemcf_arrays`.

Reported: the fit's wall time (session start-up apart), the peak RSS of the whole process tree
(Python plus, for Spark, the JVM child; sampled every 0.2 s from /proc) and whether both
engines wrote identical top-K lists. The crossover estimate is a linear extrapolation from the
measured per-row costs (``spark_s = fixed + per_row * n``, Spark's per-row part divided evenly
over more cores), stated as such.

    .venv/bin/python benchmarks/spark_itemcf.py [--sizes 1000000 10000000] [--driver-memory 8g]
        [--name spark_itemcf]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import console, render, write_json

NAME = "spark_itemcf"
SIZES = (1_000_000, 10_000_000, 50_000_000)
MB = 1024 * 1024
SPARK_CORES = 2


def tree_usage(root: int) -> tuple[int, dict[int, int]]:
    """Resident bytes of ``root`` and all its descendants, and each one's CPU clock ticks so far
    (user + system; Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[pid] = int(fields[1])
        rss[pid] = int(statm.split()[1]) * page
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree), {pid: ticks[pid] for pid in tree if pid in ticks}


class ChildFailedError(RuntimeError):
    """A measured child exited with an error (e.g. killed for memory): its peak RSS so far."""

    def __init__(self, message: str, peak: int) -> None:
        super().__init__(message)
        self.peak = peak


def run_measured(args: list[str]) -> tuple[dict[str, Any], int, float]:
    """Run this script as a child with ``args``: its JSON line, its process tree's peak RSS
    and CPU seconds (the last sample of each process: up to 0.2 s of a process is missed).

    Raises:
        ChildFailedError: the child exited with an error (its stderr's tail and peak RSS).
    """
    with tempfile.TemporaryFile(mode="w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args], stdout=subprocess.PIPE, stderr=errors, text=True
        )
        peak = 0
        cpu_ticks: dict[int, int] = {}
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                rss, ticks = tree_usage(proc.pid)
                peak = max(peak, rss)
                cpu_ticks.update(ticks)
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate()
        done.set()
        sampler.join()
        if proc.returncode != 0:
            errors.seek(0)
            tail = errors.read()[-3000:]
            raise ChildFailedError(f"child {args} failed with {proc.returncode}:\n{tail}", peak)
    cpu_s = sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")
    return json.loads(out.strip().splitlines()[-1]), peak, cpu_s


def child_simulate(n: int, folder: Path) -> dict[str, Any]:
    from funnelrec.data.partitioned import write_partitioned
    from funnelrec.data.simulator import SimulatorConfig, simulate

    sim = simulate(SimulatorConfig.for_positives(n, seed=0))
    write_partitioned(sim.interactions, folder / "interactions")
    sim.items.write_parquet(folder / "items.parquet")
    return {"rows": sim.interactions.height}


def _load(folder: Path) -> Any:
    from funnelrec.data.dataset import Dataset
    from funnelrec.data.io import load_dataset_dir

    tables = load_dataset_dir(folder)
    data = Dataset.build(tables.interactions, tables.items)
    _ = data.positives, data.item_created_at
    return data


def child_numba(folder: Path) -> dict[str, Any]:
    import numba
    import numpy as np
    import polars as pl

    from funnelrec.data.dataset import Dataset
    from funnelrec.recall.itemcf import ItemCF, ItemCFConfig

    tiny = pl.DataFrame(
        {"user_id": [1, 1, 2], "item_id": [1, 2, 1], "timestamp": [0, 1, 2], "event": ["click"] * 3}
    ).with_columns(pl.lit(1.0, dtype=pl.Float32).alias("value"))
    ItemCF(ItemCFConfig()).fit(Dataset.build(tiny))  # JIT (or cache load) outside the numbers
    data = _load(folder)
    start = time.perf_counter()
    model = ItemCF(ItemCFConfig()).fit(data, rng=np.random.default_rng(0))
    fit_s = time.perf_counter() - start
    _save(folder, "numba", model.neighbor_idx, model.neighbor_sim)
    return {
        "fit_s": fit_s,
        "threads": numba.get_num_threads(),
        "positives": data.positives.height,
        "users": data.n_users,
        "items": data.n_items,
    }


def child_spark(folder: Path, driver_memory: str) -> dict[str, Any]:

    from funnelrec.recall.itemcf import ItemCFConfig
    from funnelrec.spark.frames import spark_positives
    from funnelrec.spark.itemcf import fit_itemcf_arrays
    from funnelrec.spark.options import SparkOptions
    from funnelrec.spark.session import start_session

    data = _load(folder)
    start = time.perf_counter()
    spark = start_session(SparkOptions(master=f"local[{SPARK_CORES}]", driver_memory=driver_memory))
    session_s = time.perf_counter() - start
    start = time.perf_counter()
    positives = spark_positives(spark, data, folder / "interactions", folder / "staging")
    idx, sim = fit_itemcf_arrays(spark, positives, data, ItemCFConfig())
    fit_s = time.perf_counter() - start
    read_itself = not (folder / "staging").exists()
    spark.stop()
    _save(folder, "spark", idx, sim)
    return {"fit_s": fit_s, "session_s": session_s, "read_partitioned_itself": read_itself}


def _save(folder: Path, engine: str, idx: Any, sim: Any) -> None:
    """An engine's ``[n_items, K]`` arrays as .npy files, so :func:`compare` can map them."""
    import numpy as np

    np.save(folder / f"{engine}_idx.npy", idx)
    np.save(folder / f"{engine}_sim.npy", sim)


def compare(folder: Path, block: int = 1_000_000) -> dict[str, Any]:
    """Both engines' arrays compared ``block`` items at a time from memory-mapped files (at
    50M positives each pair of arrays is ~8 GB: loaded whole, with a float64 copy, they would
    not fit beside each other)."""
    import numpy as np

    def load(name: str) -> Any:
        return np.load(folder / f"{name}.npy", mmap_mode="r")

    idx_a, idx_b = load("numba_idx"), load("spark_idx")
    sim_a, sim_b = load("numba_sim"), load("spark_sim")
    same, rel, entries = idx_a.shape == idx_b.shape, 0.0, 0
    for start in range(0, idx_a.shape[0] if same else 0, block):
        rows = slice(start, start + block)
        same = same and bool(np.array_equal(idx_a[rows], idx_b[rows]))
        a, b = sim_a[rows].astype(np.float64), sim_b[rows].astype(np.float64)
        nz = a > 0
        if nz.any():
            rel = max(rel, float(np.max(np.abs(a[nz] - b[nz]) / a[nz])))
        entries += int(nz.sum())
    return {"same_topk": same, "max_rel_diff": rel, "neighbor_entries": entries}


def measure(n: int, driver_memory: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        _, sim_peak, _ = run_measured(["--child-simulate", str(n), "--folder", tmp])
        sim_s = time.perf_counter() - start
        console.print(f"simulated {n:,} positives in {sim_s:.1f} s (peak {sim_peak / MB:,.0f} MB)")
        numba_result, numba_peak, numba_cpu = run_measured(["--child-numba", "--folder", tmp])
        console.print(f"  numba fit {numba_result['fit_s']:.1f} s")
        numba_fit_s = numba_result.pop("fit_s")
        measured = {
            "target_positives": n,
            "simulate_s": sim_s,
            "simulate_peak_rss_mb": sim_peak / MB,
            **numba_result,
            "numba_fit_s": numba_fit_s,
            "numba_peak_rss_mb": numba_peak / MB,
            "numba_process_cpu_s": numba_cpu,
        }
        try:
            spark_result, spark_peak, spark_cpu = run_measured(
                ["--child-spark", "--folder", tmp, "--driver-memory", driver_memory]
            )
        except ChildFailedError as e:  # e.g. out of memory: what it reached is the result
            console.print(f"  [red]spark failed[/red] at peak {e.peak / MB:,.0f} MB:\n{e}")
            return {**measured, "spark_failed": str(e), "spark_peak_rss_mb": e.peak / MB}
        console.print(f"  spark fit {spark_result['fit_s']:.1f} s")
        return {
            **measured,
            "spark_fit_s": spark_result["fit_s"],
            "spark_session_s": spark_result["session_s"],
            "spark_read_partitioned_itself": spark_result["read_partitioned_itself"],
            "spark_peak_rss_mb": spark_peak / MB,
            "spark_process_cpu_s": spark_cpu,
            **compare(folder),
        }


def crossover(results: list[dict[str, Any]]) -> dict[str, float] | None:
    """Least-squares lines ``spark_s = fixed + per_row * n`` and ``numba_s = per_row * n``
    through the measured sizes, and what they imply for more cores (a linear extrapolation:
    Spark's per-row work spread evenly over ``cores``, the fixed part not)."""
    results = [r for r in results if "spark_fit_s" in r]  # sizes both engines fitted
    if len(results) < 2:
        return None
    import numpy as np

    n = np.array([r["positives"] for r in results], dtype=np.float64)
    spark_s = np.array([r["spark_fit_s"] for r in results])
    numba_s = np.array([r["numba_fit_s"] for r in results])
    per_row, fixed = np.polyfit(n, spark_s, 1)
    numba_per_row = float(np.dot(n, numba_s) / np.dot(n, n))
    ratio = per_row / numba_per_row
    return {
        "spark_fixed_s": float(fixed),
        "spark_s_per_million": float(per_row * 1e6),
        "numba_s_per_million": numba_per_row * 1e6,
        "per_row_cost_ratio": float(ratio),
        # Spark cores to match the 2-thread numba fit per row (fixed cost ignored).
        "spark_cores_to_match_per_row": float(SPARK_CORES * ratio),
    }


def _spark_cells(r: dict[str, Any]) -> list[str]:
    """A size's Spark columns of the table (and the comparison's), or "failed" ones."""
    if "spark_failed" in r:
        peak = f"{r['numba_peak_rss_mb']:.0f}"
        return ["failed", "-", "-", peak, f"{r['spark_peak_rss_mb']:.0f} (failed)"] + ["-"] * 4
    return [
        f"{r['spark_fit_s']:.1f}",
        f"{r['spark_fit_s'] / r['numba_fit_s']:.1f}x",
        f"{r['spark_session_s']:.1f}",
        f"{r['numba_peak_rss_mb']:.0f}",
        f"{r['spark_peak_rss_mb']:.0f}",
        f"{r['numba_process_cpu_s']:.0f}",
        f"{r['spark_process_cpu_s']:.0f}",
        "yes" if r["same_topk"] else "NO",
        f"{r['max_rel_diff']:.1e}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--name", default=NAME, help="results file: benchmarks/results/NAME.json")
    parser.add_argument("--child-simulate", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-numba", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-spark", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_simulate is not None:
        sys.stdout.write(json.dumps(child_simulate(args.child_simulate, args.folder)) + "\n")
        return
    if args.child_numba or args.child_spark:
        result = (
            child_numba(args.folder)
            if args.child_numba
            else child_spark(args.folder, args.driver_memory)
        )
        sys.stdout.write(json.dumps(result) + "\n")
        return

    results = [measure(n, args.driver_memory) for n in args.sizes]
    render(
        f"ItemCF fit: Spark local[{SPARK_CORES}] vs numba ({results[0]['threads']} threads), "
        "default config, one fresh process per engine and size",
        [
            "positives",
            "users",
            "items",
            "numba fit s",
            "spark fit s",
            "spark / numba",
            "spark session start s",
            "numba peak RSS MB",
            "spark peak RSS MB (driver + JVM)",
            "numba process CPU s",
            "spark process CPU s",
            "same top-K",
            "max rel diff",
        ],
        [
            [
                f"{r['positives']:,}",
                f"{r['users']:,}",
                f"{r['items']:,}",
                f"{r['numba_fit_s']:.1f}",
                *_spark_cells(r),
            ]
            for r in results
        ],
    )
    line = crossover(results)
    if line is not None:
        console.print(
            "Linear extrapolation (not measured): spark_s = "
            f"{line['spark_fixed_s']:.1f} + {line['spark_s_per_million']:.2f} x M rows; numba_s "
            f"= {line['numba_s_per_million']:.2f} x M rows; Spark costs "
            f"{line['per_row_cost_ratio']:.1f}x numba per row, so it needs about "
            f"{line['spark_cores_to_match_per_row']:.0f} cores to match the 2-thread fit per row."
        )
    console.print(f"1-min load average at end: {os.getloadavg()[0]:.2f} (shared 2-core machine)")
    write_json(
        args.name,
        {"spark_cores": SPARK_CORES, "results": results, "extrapolation": line},
    )


if __name__ == "__main__":
    main()
