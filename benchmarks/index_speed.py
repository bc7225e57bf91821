"""Vector index speed and recall: exact search vs Faiss HNSW vs Faiss IVF at default settings.

Data: ``--n`` item vectors of width ``--dim`` drawn from a seeded mixture of 50 Gaussians
(centres ~ N(0, I), unit-variance noise), and ``--queries`` held-out draws from the same
mixture. Cases: that mixture for every metric, plus the same mixture with each item scaled by a
log-normal norm (``--norm-sigma``) under ``ip``, which is what dot-product two-tower embeddings
look like (popular items get larger norms) and the hard case for graph search.

Per case and index: build time (one run), queries/s for one batch of ``--queries`` at ``k=--k``
(median of ``--repeats`` after a warm-up), the median time of one query searched alone (what a
served request pays: ``--single`` queries, one at a time) and recall@k of the top-k against the
exact index. Target (house rule 10): recall@k >= 0.95 for HNSW and IVF at their default
settings. ``--n`` takes a comma list of catalogue sizes and ``--ef-search`` the HNSW setting:
where one query searched exactly costs less than on the graph is what
:class:`~funnelrec.index.AutoIndexConfig`'s cut-off rests on.

    .venv/bin/python benchmarks/index_speed.py [--n 50000] [--threads N]
    .venv/bin/python benchmarks/index_speed.py --n 5000,20000,50000,100000 --metrics ip \
        --norm-sigma 0 --k 200 --ef-search 512 --threads 1
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


def configs(ef_search: int) -> list[IndexConfig]:
    """The indexes compared: exact, HNSW (at ``ef_search``) and IVF, default settings else."""
    return [ExactIndexConfig(), HNSWIndexConfig(ef_search=ef_search), IVFIndexConfig()]


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
    for config in configs(args.ef_search):
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
        single = queries[: args.single]
        one_query_s = []
        for q in single:
            start = time.perf_counter()
            index.search(q[None, :], args.k)
            one_query_s.append(time.perf_counter() - start)
        if truth is None:
            truth = found
        rows.append(
            {
                "data": label,
                "n": vectors.shape[0],
                "metric": metric,
                "index": config.kind,
                "settings": describe(config, index),
                "build_s": build_s,
                "search_s": search_s,
                "queries_per_s": queries.shape[0] / search_s,
                "one_query_ms": statistics.median(one_query_s) * 1e3,
                f"recall@{args.k}": recall_at_k(found, truth),
            }
        )
        console.print(f"  {label} {metric} {config.kind}: build {build_s:.2f} s", highlight=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="50000", help="indexed vectors (a comma list: each size)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--metrics", default="ip,cosine,l2")
    parser.add_argument("--norm-sigma", type=float, default=0.5, help="0 = skip the norms case")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--ef-search", type=int, default=HNSWIndexConfig().ef_search)
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
    sizes = [int(n) for n in args.n.split(",")]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for label, metric, sigma in cases:
            rng = np.random.default_rng(args.seed)
            points = mixture(n + args.queries, args.dim, rng, sigma)
            rows += run_case(label, metric, points[:n], points[n:], args)

    recall_key = f"recall@{args.k}"
    render(
        f"Vector indexes: {args.n} x {args.dim} vectors, {args.queries:,} queries, "
        f"k={args.k}, {faiss.omp_get_max_threads()} Faiss threads",
        [
            "data",
            "n",
            "metric",
            "index",
            "settings",
            "build s",
            "queries/s",
            "1 query ms",
            recall_key,
        ],
        [
            [
                r["data"],
                f"{r['n']:,}",
                r["metric"],
                r["index"],
                r["settings"],
                r["build_s"],
                f"{r['queries_per_s']:,.0f}",
                r["one_query_ms"],
                r[recall_key],
            ]
            for r in rows
        ],
    )
    approx = [r for r in rows if r["index"] != "exact"]
    failing = [
        f"{r['n']}/{r['data']}/{r['metric']}/{r['index']}"
        for r in approx
        if r[recall_key] < TARGET_RECALL
    ]
    ok = not failing
    console.print(
        f"recall@{args.k} >= {TARGET_RECALL} for every approximate index: "
        f"{'PASS' if ok else 'FAIL (' + ', '.join(failing) + ')'}",
        highlight=False,
    )
    write_json(
        NAME,
        {
            "n": sizes,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "seed": args.seed,
            "ef_search": args.ef_search,
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
