"""How `funnelrec run` grows with the data: wall time and peak RSS per stage, and the fitted
growth exponent of each stage.

Per size (``--sizes``, simulated rows, impressions included: ``SimulatorConfig.for_interactions``)
a fresh child process runs what ``funnelrec run`` runs, in-process: simulate, write the tables
as Parquet and load them back (validation included), then ``eval.run.run_tables`` (split, fit
the whole funnel, evaluate every list, write metrics.json and the artifact) with the default
configuration. Each stage is one library function, wrapped at its call site for the run:

    split, fit.recall (every channel on the training side), rank.window (the channels again on
    the data before the ranking window), recall.tune, merge.tune, rank.samples, fit.rank,
    guards, eval.queries, eval.lists, eval.intervals, eval.latency, eval.rerank_sweep,
    eval.rank, save

and "other" is the rest of the run. A stage's peak RSS is the process high-water mark over
the stage alone: ``/proc/self/clear_refs`` is written ``5`` (reset VmHWM) when the stage
starts, and ``VmHWM`` read when it ends; it includes what earlier stages still hold. CPU
seconds of each stage (all threads, ``time.process_time``) are recorded beside the wall time:
on a shared machine they move less with the load. The run's own per-step records
(metrics.json ``timings_s``: ``fit.<channel>``, the batch timings of recall / merge / rank /
rerank) are kept in the JSON too.

The growth exponent of a stage is the slope of log(wall) against log(rows), fitted over all
sizes (``exponent``) and between the two largest (``exponent_top``); 1 is linear. Goals:
every stage <= 1.1, and the largest run within 24 GB.

    nice -n 10 .venv/bin/python benchmarks/scaling.py --sizes 0.1M,1M,3M [--merge]
        [--profile-stage merge.tune]

``--merge`` keeps the sizes of an earlier results/scaling.json that this run did not repeat
(so 10M can be run on its own afterwards). ``--held-out`` only simulates and splits each size
and prints how many held-out users the evaluation would query (``eval.max_queries`` caps it).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _common import RESULTS, console, render, write_json

NAME = "scaling"
GOAL_EXPONENT = 1.1
GOAL_PEAK_GB = 24.0
PROFILE_LINES = 30
"""Functions shown by ``--profile-stage``."""

# (module, attribute, stage): the functions `funnelrec run` calls, in call order.
STAGES = (
    ("funnelrec.eval.protocol", "split_and_index", "split"),
    ("funnelrec.pipeline.fit", "fit_recall", "fit.recall"),
    ("funnelrec.pipeline.fit", "recall_window", "rank.window"),
    ("funnelrec.pipeline.fit", "tune_channels", "recall.tune"),
    ("funnelrec.pipeline.fit", "tune_merge", "merge.tune"),
    ("funnelrec.pipeline.fit", "build_rank_data", "rank.samples"),
    ("funnelrec.pipeline.fit", "_fit_ranker", "fit.rank"),
    ("funnelrec.pipeline.fit", "apply_guards", "guards"),
    ("funnelrec.eval.protocol", "build_eval_queries", "eval.queries"),
    ("funnelrec.eval.protocol", "evaluate_lists", "eval.lists"),
    ("funnelrec.eval.protocol", "list_intervals", "eval.intervals"),
    ("funnelrec.eval.protocol", "request_latency", "eval.latency"),
    ("funnelrec.eval.protocol", "rerank_sweep", "eval.rerank_sweep"),
    ("funnelrec.eval.protocol", "rank_metrics", "eval.rank"),
    ("funnelrec.eval.run", "save_recommender", "save"),
)


def parse_size(text: str) -> int:
    """``"0.1M"`` -> 100_000, ``"500k"`` -> 500_000, ``"2000"`` -> 2000."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


# ---------------------------------------------------------------- child: one size, one process
def _proc_kb(field: str) -> int:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """Start a new VmHWM measurement (Linux >= 4.0)."""
    with Path("/proc/self/clear_refs").open("w") as refs:
        refs.write("5")


class StageRecorder:
    """Wall seconds and peak RSS of each wrapped stage (summed / maxed over its calls)."""

    def __init__(self, profile_stage: str | None = None) -> None:
        self.profile_stage = profile_stage
        self.wall_s: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}
        self.peak_gb: dict[str, float] = {}

    def measure(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            _reset_peak()
            start, cpu_start = time.perf_counter(), time.process_time()
            profiler = cProfile.Profile() if stage == self.profile_stage else None
            try:
                if profiler is not None:
                    return profiler.runcall(fn, *args, **kwargs)
                return fn(*args, **kwargs)
            finally:
                if profiler is not None:  # to stderr: stdout carries the child's JSON
                    stats = pstats.Stats(profiler, stream=sys.stderr)
                    stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
                self.wall_s[stage] = self.wall_s.get(stage, 0.0) + time.perf_counter() - start
                cpu = time.process_time() - cpu_start
                self.cpu_s[stage] = self.cpu_s.get(stage, 0.0) + cpu
                peak = _proc_kb("VmHWM") / 1e6
                self.peak_gb[stage] = max(self.peak_gb.get(stage, 0.0), peak)
                _reset_peak()

        return timed

    def wrap_stages(self) -> None:
        for module_name, attribute, stage in STAGES:
            module = importlib.import_module(module_name)
            setattr(module, attribute, self.measure(stage, getattr(module, attribute)))


class StopRequestedError(Exception):
    """SIGUSR1: report the stages finished so far (a partial run) and exit."""


def _stop_early(signum: int, frame: Any) -> None:
    raise StopRequestedError


def child(n_rows: int, seed: int, profile_stage: str | None = None) -> dict[str, Any]:
    """One size: simulate, write + load, run_tables; the stages' wall time and peak RSS.

    ``kill -USR1`` stops it between Python steps with the stages measured so far, marked
    ``"partial": true`` (left out of the exponents): a size that would not finish in time
    still says where its time went.
    """
    from funnelrec.config.experiment import ExperimentConfig
    from funnelrec.data.io import RawTables, load_dataset_dir, write_tables
    from funnelrec.data.simulator import SimulatorConfig, simulate
    from funnelrec.eval.run import run_tables

    recorder = StageRecorder(profile_stage)
    recorder.wrap_stages()
    signal.signal(signal.SIGUSR1, _stop_early)
    total_start = time.perf_counter()
    out: dict[str, Any] = {"target_rows": n_rows, "rows": n_rows, "partial": True}
    with tempfile.TemporaryDirectory(prefix="funnelrec-scaling-") as tmp:
        folder = Path(tmp)

        def simulate_and_write() -> None:
            sim = simulate(SimulatorConfig.for_interactions(n_rows, seed=seed))
            write_tables(RawTables(sim.interactions, sim.items, sim.users, ()), folder / "data")

        run_start, run_cpu_start = time.perf_counter(), time.process_time()
        try:
            recorder.measure("simulate", simulate_and_write)()
            tables = recorder.measure("load", load_dataset_dir)(folder / "data")
            out["rows"] = tables.interactions.height
            run_start, run_cpu_start = time.perf_counter(), time.process_time()
            metrics = run_tables(tables, folder / "out", ExperimentConfig())
            out.update(
                partial=False,
                users=metrics["data"]["train_users"],
                items=metrics["data"]["train_items"],
                run_timings_s=metrics["timings_s"],
                # eval.max_queries: how many held-out users were evaluated, of how many
                eval_queries=metrics["split"]["n_queries"],
                held_out_users=metrics["split"].get("n_held_out_users"),
                ndcg_at_10={k: v.get("ndcg@10") for k, v in metrics["recall"].items()},
            )
        except StopRequestedError:
            pass
        run_s = time.perf_counter() - run_start
        run_cpu_s = time.process_time() - run_cpu_start
    inside = sum(s for k, s in recorder.wall_s.items() if k not in ("simulate", "load"))
    recorder.wall_s["other"] = max(run_s - inside, 0.0)
    return {
        **out,
        "run_s": run_s,
        "run_cpu_s": run_cpu_s,
        "total_s": time.perf_counter() - total_start,
        "wall_s": recorder.wall_s,
        "cpu_s": recorder.cpu_s,
        "peak_rss_gb": recorder.peak_gb,
        "process_peak_rss_gb": max(recorder.peak_gb.values(), default=0.0),
    }


def held_out_counts(sizes: list[int], seed: int) -> None:
    """Per size: the simulated log's users and the held-out users the default evaluation
    queries (``eval.queries.held_out_per_user``), against ``eval.max_queries``: what the
    evaluation's query count grows with, without fitting anything."""
    from funnelrec.config.experiment import ExperimentConfig
    from funnelrec.data.simulator import SimulatorConfig, simulate
    from funnelrec.eval.protocol import split_and_index
    from funnelrec.eval.queries import held_out_per_user

    config = ExperimentConfig()
    rows = []
    for n_rows in sizes:
        sim = simulate(SimulatorConfig.for_interactions(n_rows, seed=seed))
        split, train = split_and_index(sim.interactions, sim.items, sim.users, config)
        held_out = held_out_per_user(split, train, train.item_vocab, config).height
        cap = config.eval.max_queries
        evaluated = held_out if cap is None else min(held_out, cap)
        rows.append([sim.interactions.height, train.n_users, held_out, evaluated])
    render(
        f"held-out users per size (eval.max_queries = {config.eval.max_queries})",
        ["rows", "train users", "held-out users", "evaluated queries"],
        rows,
    )


# ---------------------------------------------------------------- parent: sizes, fit, table
def run_size(n_rows: int, seed: int, profile_stage: str | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", str(n_rows), "--seed", str(seed)]
    if profile_stage is not None:
        command += ["--profile-stage", profile_stage]
    out = subprocess.run(
        command,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )  # the caller's environment as is: a PYTHONPATH naming another checkout's src measures it
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_seconds(run: dict[str, Any], measure: str) -> float:
    """The whole run (simulation and loading excluded) in ``measure``'s seconds."""
    if measure == "wall_s":
        return float(run["run_s"])
    return float(run.get("run_cpu_s", sum(run.get(measure, {}).values())))


def growth_exponents(
    runs: list[dict[str, Any]], measure: str = "wall_s"
) -> dict[str, dict[str, float | None]]:
    """Per stage: the log-log slope of ``measure`` (``wall_s`` or ``cpu_s``) against rows over
    all sizes, and between the two largest; None where a stage took under 50 ms at some size
    (noise, not growth)."""
    runs = sorted(runs, key=lambda r: r["rows"])
    stages = sorted({s for r in runs for s in r.get(measure, {})} | {"run"})
    out: dict[str, dict[str, float | None]] = {}
    rows = np.array([r["rows"] for r in runs], dtype=np.float64)
    for stage in stages:
        if stage == "run":
            seconds = [run_seconds(r, measure) for r in runs]
        else:
            seconds = [r.get(measure, {}).get(stage, 0.0) for r in runs]
        taken = np.array(seconds)
        if len(runs) < 2 or (taken < 0.05).any():
            out[stage] = {"exponent": None, "exponent_top": None}
            continue
        slope = float(np.polyfit(np.log(rows), np.log(taken), 1)[0])
        top = float(np.log(taken[-1] / taken[-2]) / np.log(rows[-1] / rows[-2]))
        out[stage] = {"exponent": slope, "exponent_top": top}
    return out


def print_table(runs: list[dict[str, Any]], exponents: dict[str, Any]) -> None:
    """Wall s and peak GB per stage and size; exponents of wall and CPU time."""
    runs = sorted(runs, key=lambda r: r["rows"])
    order = ["simulate", "load", *(s for _, _, s in STAGES), "other"]
    stages = [s for s in order if any(s in r["wall_s"] for r in runs)]
    sizes = [f"{r['rows'] / 1e6:.2g}M{' (partial)' if r.get('partial') else ''}" for r in runs]
    columns = [
        "stage",
        *(f"{s} s" for s in sizes),
        *(f"{s} GB" for s in sizes),
        "exp wall",
        "exp wall top",
        "exp cpu top",
    ]

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    table = []
    for stage in [*stages, "run"]:
        walls = [
            run_seconds(r, "wall_s") if stage == "run" else r["wall_s"].get(stage) for r in runs
        ]
        peaks = [
            r["process_peak_rss_gb"] if stage == "run" else r["peak_rss_gb"].get(stage)
            for r in runs
        ]
        wall_exp = exponents["wall"].get(stage, {})
        cpu_exp = exponents["cpu"].get(stage, {})
        table.append(
            [
                stage,
                *(fmt(w) for w in walls),
                *(fmt(p) for p in peaks),
                fmt(wall_exp.get("exponent")),
                fmt(wall_exp.get("exponent_top")),
                fmt(cpu_exp.get("exponent_top")),
            ]
        )
    render("funnelrec run per stage: wall s, peak RSS GB, growth exponents", columns, table)


def extrapolate(
    runs: list[dict[str, Any]], exponents: dict[str, Any], rows: float
) -> dict[str, float]:
    """Per stage: CPU seconds at ``rows`` from the largest run and the stage's CPU exponent
    between the two largest sizes (a power law; linear where the exponent is unknown, flat
    where it is negative). "run" is the sum of the stages."""
    largest = max(runs, key=lambda r: r["rows"])
    scale = rows / largest["rows"]
    out: dict[str, float] = {}
    for stage, exp in exponents["cpu"].items():
        if stage == "run":
            continue
        seconds = largest["cpu_s"].get(stage, 0.0)
        # Unknown: linear. Negative (a stage capped by its config, e.g. early stopping, or
        # load noise): constant, never cheaper with more data.
        power = max(exp["exponent_top"], 0.0) if exp["exponent_top"] is not None else 1.0
        out[stage] = seconds * scale**power
    out["run"] = sum(out.values())
    return out


def report(
    runs: list[dict[str, Any]], extra: dict[str, Any], extrapolate_rows: float | None = None
) -> None:
    """Fit the exponents (complete runs only), print the table and the goals, write
    results/scaling.json."""
    runs = sorted(runs, key=lambda r: r["rows"])
    complete = [r for r in runs if not r.get("partial")]
    exponents = {
        "wall": growth_exponents(complete, "wall_s"),
        "cpu": growth_exponents(complete, "cpu_s"),
    }
    print_table(runs, exponents)
    for measure in ("wall", "cpu"):
        tops = {k: e["exponent_top"] for k, e in exponents[measure].items()}
        measured = {k: v for k, v in tops.items() if v is not None}
        if measured:
            worst = max(measured, key=lambda k: measured[k])
            console.print(
                f"largest {measure} exponent (two largest sizes): {worst} "
                f"{measured[worst]:.2f} (goal <= {GOAL_EXPONENT})",
                highlight=False,
            )
    peak = max(r["process_peak_rss_gb"] for r in runs)
    console.print(f"peak RSS {peak:.2f} GB (goal <= {GOAL_PEAK_GB:.0f} GB)", highlight=False)
    if extrapolate_rows is not None and len(complete) >= 2:
        hours = extrapolate(complete, exponents, extrapolate_rows)
        render(
            f"CPU hours at {extrapolate_rows:.3g} rows (power law from the two largest sizes)",
            ["stage", "cpu h"],
            [[k, v / 3600] for k, v in sorted(hours.items(), key=lambda kv: -kv[1])],
        )
        extra = {**extra, "extrapolated_cpu_s": {"rows": extrapolate_rows, "stages": hours}}
    write_json(
        NAME,
        {
            "goals": {"exponent_max": GOAL_EXPONENT, "peak_rss_gb_max": GOAL_PEAK_GB},
            **extra,
            "runs": runs,
            "exponents": exponents,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1M,1M,3M", help="simulated rows, e.g. 0.1M,1M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--merge", action="store_true", help="keep other sizes of the last JSON")
    parser.add_argument(
        "--extrapolate-rows", type=float, default=None, help="also print CPU hours at this size"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="re-fit and print the last JSON's runs"
    )
    parser.add_argument(
        "--profile-stage",
        choices=[stage for _, _, stage in STAGES],
        default=None,
        help="print a cProfile of this stage (cumulative, to stderr); it slows that stage",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="only simulate and split each size and print its held-out users (no run)",
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.held_out:
        held_out_counts([parse_size(size) for size in args.sizes.split(",")], args.seed)
        return
    if args.report_only:
        saved = json.loads((RESULTS / f"{NAME}.json").read_text())
        keep = ("cpus", "load_average_1min_end")
        report(saved["runs"], {k: saved[k] for k in keep}, args.extrapolate_rows)
        return
    if args.child is not None:
        sys.stdout.write(json.dumps(child(args.child, args.seed, args.profile_stage)) + "\n")
        return
    runs: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        n_rows = parse_size(size)
        console.print(f"{size}: running ...", highlight=False)
        run = run_size(n_rows, args.seed, args.profile_stage)
        console.print(
            f"{size}: {run['rows']:,} rows, run {run['run_s']:.1f} s, "
            f"peak {run['process_peak_rss_gb']:.2f} GB",
            highlight=False,
        )
        runs.append(run)
    previous = RESULTS / f"{NAME}.json"
    if args.merge and previous.exists():
        repeated = {r["target_rows"] for r in runs}
        old = json.loads(previous.read_text()).get("runs", [])
        runs += [r for r in old if r["target_rows"] not in repeated]
    extra = {"cpus": os.cpu_count(), "load_average_1min_end": os.getloadavg()[0]}
    report(runs, extra, args.extrapolate_rows)


if __name__ == "__main__":
    main()
