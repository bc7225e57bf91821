"""The two-tower's warm start: the funnel's fit begun from the ranking window's fit, against a
fit from scratch, on real and simulated logs.

Per case, ``run_experiment`` (what ``funnelrec run`` runs) twice with the default config: as
is (``warm_start_epochs`` at its default: the funnel's two-tower starts from the fit before
the ranking window and trains that many epochs) and with ``warm_start_epochs = 0`` (from
scratch, ``train.epochs``). One warm-up run on a tenth of the first case's log comes first.
Same split, seed and held-out users, so the lists are compared query by query: the
two-tower channel's list and the final list, NDCG@10 and Recall@50, the paired difference
warm - scratch with its 95% bootstrap interval, and the funnel's two-tower fit seconds
(``fit.two_tower``) and whole run seconds of each.

    .venv/bin/python benchmarks/warm_start.py [--cases ml-100k taobao ...] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from typing import Any

import numpy as np

from _common import load_tables, render, taobao_in_window, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig
from funnelrec.errors import FunnelrecError
from funnelrec.eval.intervals import final_list
from funnelrec.eval.protocol import ExperimentResult, run_experiment
from funnelrec.features import text
from funnelrec.metrics.intervals import paired_difference
from funnelrec.recall.two_tower import TwoTowerConfig

NAME = "warm_start"
EVAL = EvalConfig(ks=(10, 50), latency_requests=0, rerank_sweep_queries=0)
METRICS = ("ndcg@10", "recall@50")
CASES = {  # name: (source, simulated interactions)
    "ml-100k": ("movielens-100k", 0),
    "taobao": ("taobao", 0),
    "kuairand": ("kuairand", 0),
    "mind": ("mind", 0),
    "simulator-200k": ("simulator", 200_000),
}
CHANNEL = "two_tower"
_WARMED_UP: list[str] = []


def _config(seed: int, warm_start_epochs: int | None) -> ExperimentConfig:
    """The default config; with ``warm_start_epochs`` set on the two-tower channel."""
    config = ExperimentConfig(seed=seed, eval=EVAL)
    if warm_start_epochs is None:
        return config
    channels = dict(config.recall.channels)
    tower = channels[CHANNEL]
    assert isinstance(tower, TwoTowerConfig)
    channels[CHANNEL] = tower.model_copy(update={"warm_start_epochs": warm_start_epochs})
    recall = config.recall.model_copy(update={"channels": channels})
    return config.model_copy(update={"recall": recall})


def _run(tables: Any, config: ExperimentConfig) -> tuple[ExperimentResult, float]:
    # Every run embeds its item texts itself, as a fresh `funnelrec run` process does: the
    # per-process MiniLM vector cache would otherwise let the second run skip that work.
    text._MINILM_CACHE.clear()
    start = time.perf_counter()
    result = run_experiment(tables.interactions, tables.items, tables.users, config)
    return result, time.perf_counter() - start


def run_case(name: str, seed: int) -> list[dict[str, Any]]:
    source, sim = CASES[name]
    tables = load_tables(source, sim_interactions=sim, seed=seed)
    if tables is None:
        return [{"case": name, "skipped": "../shared/data not found"}]
    if source == "taobao":
        tables, _ = taobao_in_window(tables)
    if not _WARMED_UP:
        # One-off costs (numba compilation, loading a text model) fall on the process's first
        # run: pay them on a tenth of the log before the two measured runs.
        head = tables.interactions.sort("timestamp").head(tables.interactions.height // 10)
        with contextlib.suppress(FunnelrecError):
            _run(dataclasses.replace(tables, interactions=head), _config(seed, 0))
        _WARMED_UP.append(name)
    warm, warm_s = _run(tables, _config(seed, None))
    cold, cold_s = _run(tables, _config(seed, 0))
    assert warm.query_users is not None and cold.query_users is not None
    assert warm.query_users.equals(cold.query_users)  # same split: the same queries
    rows = []
    lists = [CHANNEL, final_list(warm.per_query)]
    for listed in [x for x in lists if x is not None and x in cold.per_query]:
        for metric in METRICS:
            a, b = warm.per_query[listed][metric], cold.per_query[listed][metric]
            diff = paired_difference(a, b, np.random.default_rng(seed))
            rows.append(
                {
                    "case": name,
                    "list": listed,
                    "metric": metric,
                    "warm": float(np.mean(a)),
                    "scratch": float(np.mean(b)),
                    "diff": diff.mean,
                    "low": diff.low,
                    "high": diff.high,
                    "queries": len(a),
                }
            )
    timing = {
        "case": name,
        "warm_fit_two_tower_s": warm.metrics["timings_s"].get(f"fit.{CHANNEL}"),
        "scratch_fit_two_tower_s": cold.metrics["timings_s"].get(f"fit.{CHANNEL}"),
        "warm_run_s": warm_s,
        "scratch_run_s": cold_s,
    }
    return [*rows, timing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = [row for name in args.cases for row in run_case(name, args.seed)]
    quality = [r for r in results if "metric" in r]
    render(
        "Warm start vs from scratch (paired, warm - scratch, 95% bootstrap)",
        ["case", "list", "metric", "warm", "scratch", "warm - scratch", "queries"],
        [
            [
                r["case"],
                r["list"],
                r["metric"],
                f"{r['warm']:.4f}",
                f"{r['scratch']:.4f}",
                f"{r['diff']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}]",
                r["queries"],
            ]
            for r in quality
        ],
    )
    times = [r for r in results if "warm_run_s" in r]
    render(
        "Seconds: the funnel's two-tower fit and the whole run",
        ["case", "fit.two_tower warm", "scratch", "ratio", "run warm", "run scratch", "ratio"],
        [
            [
                r["case"],
                f"{r['warm_fit_two_tower_s']:.1f}",
                f"{r['scratch_fit_two_tower_s']:.1f}",
                f"{r['warm_fit_two_tower_s'] / r['scratch_fit_two_tower_s']:.2f}",
                f"{r['warm_run_s']:.1f}",
                f"{r['scratch_run_s']:.1f}",
                f"{r['warm_run_s'] / r['scratch_run_s']:.2f}",
            ]
            for r in times
        ],
    )
    write_json(NAME, {"seed": args.seed, "results": results})


if __name__ == "__main__":
    main()
