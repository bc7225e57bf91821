"""Vector index speed and recall: exact search vs Faiss HNSW vs Faiss IVF at default settings.

Data: ``--n`` item vectors of width ``--dim`` drawn from a seeded mixture of 50 Gaussians
(centres ~ N(0, I), unit-variance noise), and ``--queries`` held-out draws from the same
mixture. Cases: that mixture for every metric, plus the same mixture with each item scaled by a
log-normal norm (``--norm-sigma``) under ``ip``, which is what dot-product two-tower embeddings
look like (popular items get larger norms) and the hard case for graph search.

Per case and index: build time (one run), queries/s for one batch of ``--queries`` at ``k=--k``
(median of ``--repeats`` after a warm-up) and recall@k of the top-k against the exact index.
Target (house rule 10): recall@k >= 0.95 for HNSW and IVF at their default settings.

    .venv/bin/python benchmarks/index_speed.py [--n 50000] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import faiss
import numpy as np

from _common import console, render, write_json
from funnelrec.index import (
    ExactIndexConfig,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndexConfig,
    Metric,
    build_index,
    recall_at_k,
)

NAME = "index_speed"
TARGET_RECALL = 0.95
CONFIGS: list[IndexConfig] = [ExactIndexConfig(), HNSWIndexConfig(), IVFIndexConfig()]


def mixture(
    n: int, dim: int, rng: np.random.Generator, norm_sigma: float = 0.0, n_clusters: int = 50
) -> np.ndarray:
    """``[n, dim]`` float32 draws from a Gaussian mixture, optionally with log-normal norms."""
    centres = rng.standard_normal((n_clusters, dim))
    x = centres[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, dim))
    if norm_sigma > 0:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        x *= rng.lognormal(0.0, norm_sigma, (n, 1))
    return x.astype(np.float32)


def describe(config: IndexConfig, index: Any) -> str:
    """The settings actually used (auto nlist resolved)."""
    match config:
        case HNSWIndexConfig():
            return f"M={config.M} efC={config.ef_construction} efS={config.ef_search}"
        case IVFIndexConfig():
            return f"nlist={index._index.nlist} nprobe={index._index.nprobe}"
    return f"block={config.block_size}"


def run_case(
    label: str, metric: Metric, vectors: np.ndarray, queries: np.ndarray, args: argparse.Namespace
) -> list[dict[str, Any]]:
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    rows: list[dict[str, Any]] = []
    truth: np.ndarray | None = None
    for config in CONFIGS:
        index = build_index(config, metric)
        start = time.perf_counter()
        index.build(vectors, ids)
        build_s = time.perf_counter() - start
        _, found = index.search(queries, args.k)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            _, found = index.search(queries, args.k)
            times.append(time.perf_counter() - start)
        search_s = statistics.median(times)
        if truth is None:
            truth = found
        rows.append(
            {
                "data": label,
                "metric": metric,
                "index": config.kind,
                "settings": describe(config, index),
                "build_s": build_s,
                "search_s": search_s,
                "queries_per_s": queries.shape[0] / search_s,
                f"recall@{args.k}": recall_at_k(found, truth),
            }
        )
        console.print(f"  {label} {metric} {config.kind}: build {build_s:.2f} s", highlight=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="indexed vectors")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--metrics", default="ip,cosine,l2")
    parser.add_argument("--norm-sigma", type=float, default=0.5, help="0 = skip the norms case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="Faiss OpenMP threads")
    args = parser.parse_args()
    if args.threads is not None:
        faiss.omp_set_num_threads(args.threads)
    if not console.is_terminal:
        console.width = 160

    cases: list[tuple[str, Metric, float]] = [
        ("mixture", metric, 0.0)  # type: ignore[misc]
        for metric in args.metrics.split(",")
    ]
    if args.norm_sigma > 0:
        cases.append((f"mixture, lognormal norms s={args.norm_sigma}", "ip", args.norm_sigma))
    rows: list[dict[str, Any]] = []
    for label, metric, sigma in cases:
        rng = np.random.default_rng(args.seed)
        points = mixture(args.n + args.queries, args.dim, rng, sigma)
        rows += run_case(label, metric, points[: args.n], points[args.n :], args)

    recall_key = f"recall@{args.k}"
    render(
        f"Vector indexes: {args.n:,} x {args.dim} vectors, {args.queries:,} queries, "
        f"k={args.k}, {faiss.omp_get_max_threads()} Faiss threads",
        ["data", "metric", "index", "settings", "build s", "queries/s", recall_key],
        [
            [
                r["data"],
                r["metric"],
                r["index"],
                r["settings"],
                r["build_s"],
                f"{r['queries_per_s']:,.0f}",
                r[recall_key],
            ]
            for r in rows
        ],
    )
    approx = [r for r in rows if r["index"] != "exact"]
    failing = [f"{r['data']}/{r['metric']}/{r['index']}" for r in approx if r[recall_key] < 0.95]
    ok = not failing
    console.print(
        f"recall@{args.k} >= {TARGET_RECALL} for every approximate index: "
        f"{'PASS' if ok else 'FAIL (' + ', '.join(failing) + ')'}",
        highlight=False,
    )
    write_json(
        NAME,
        {
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "seed": args.seed,
            "faiss_threads": faiss.omp_get_max_threads(),
            "load_average_1m": os.getloadavg()[0],
            "target_recall": TARGET_RECALL,
            "pass": ok,
            "failing": failing,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
