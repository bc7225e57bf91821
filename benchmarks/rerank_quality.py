"""Re-ranking quality: the accuracy-diversity trade-off of MMR and DPP behind the full funnel.

Per dataset, ``run_experiment`` (the code ``funnelrec run`` runs) with the default funnel:
recall channels, merge, MMoE ranking, then the re-ranker. ``metrics["rerank"]`` re-ranks the
ranked lists of held-out queries (``--sweep-queries``) with MMR over lambda and DPP over theta
and judges each point on the same queries: NDCG@10 / Recall@10 on the held-out truth, ILD@10
(mean pairwise cosine distance of the two-tower item vectors), category ILD@10 (share of item
pairs of different categories) and category coverage@10. Reported: the ranked list (no
re-ranking), the default re-ranker and every sweep point, with the relative change of NDCG
and ILD against the ranked list.

Datasets: ``movielens-100k`` (leave-last-out split: 943 queries, category = first genre),
``taobao`` (../shared UserBehavior head inside the official window, temporal split,
category = Taobao category id), ``simulator`` (``--sim-interactions`` rows, temporal split).

    .venv/bin/python benchmarks/rerank_quality.py [--datasets movielens-100k taobao simulator]
        [--sim-interactions 300000] [--sweep-queries 2000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import console, load_tables, render, taobao_in_window, write_json
from funnelrec.config import load_config
from funnelrec.eval.protocol import run_experiment

NAME = "rerank_quality"
DATASETS = ("movielens-100k", "taobao", "simulator")
SPLITS = {"movielens-100k": ["split.kind=leave_last_out"]}
METRICS = ("ndcg@10", "recall@10", "ild@10", "category_ild@10", "category_coverage@10")


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    tables = load_tables(name, sim_interactions=args.sim_interactions)
    if tables is None:
        return None
    notes: dict[str, Any] = {}
    if name == "taobao":
        tables, notes["dropped_outside_window"] = taobao_in_window(tables)
    config = load_config(
        overrides=[
            *SPLITS.get(name, []),
            "eval.latency_requests=0",
            f"eval.rerank_sweep_queries={args.sweep_queries}",
            f"seed={args.seed}",
        ]
    )
    start = time.perf_counter()
    result = run_experiment(tables.interactions, tables.items, tables.users, config)
    seconds = time.perf_counter() - start
    sweep = result.metrics.get("rerank")
    if sweep is None:
        console.print(f"[yellow]{name}: no re-ranking sweep (no ranker?)[/yellow]")
        return None
    return {"seconds": round(seconds, 1), "notes": notes, **sweep}


def rows_of(name: str, sweep: dict[str, Any]) -> list[list[Any]]:
    base = sweep["baseline"]

    def row(method: str, param: str, point: dict[str, float]) -> list[Any]:
        d_ndcg = 100 * (point["ndcg@10"] / base["ndcg@10"] - 1) if base["ndcg@10"] else 0.0
        d_ild = 100 * (point["ild@10"] / base["ild@10"] - 1) if base["ild@10"] else 0.0
        values = [point.get(m, float("nan")) for m in METRICS]
        return [name, method, param, *values, f"{d_ndcg:+.1f}%", f"{d_ild:+.1f}%"]

    out = [row("none", "-", base)]
    default = sweep["params"]
    out.append(
        row(f"default {sweep['method']}", f"{next(iter(default.values())):g}", sweep["default"])
    )
    for method, points in sweep["tradeoff"].items():
        out += [row(method, f"{p['param']:g}", p) for p in points]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--sim-interactions", type=int, default=300_000)
    parser.add_argument("--sweep-queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    rows: list[list[Any]] = []
    for name in args.datasets:
        console.print(f"[bold]{name}[/bold]: running the funnel ...")
        sweep = run_dataset(name, args)
        if sweep is None:
            continue
        results[name] = sweep
        rows += rows_of(name, sweep)
        console.print(
            f"{name}: {sweep['sweep_queries']} queries, similarity {sweep['similarity']}, "
            f"{sweep['seconds']} s"
        )
    render(
        "Re-ranking trade-off (K = 10; deltas against the ranked list)",
        ["dataset", "method", "param", *METRICS, "dNDCG", "dILD"],
        rows,
    )
    write_json(NAME, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
