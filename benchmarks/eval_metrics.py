"""Cost of the evaluation's list and ranked-candidate metrics at the 10M scaling point's shape,
against the sort-based forms they replaced, side by side in one run (values must be equal).

* ``hit_matrix``: each list entry looked up among the sorted truth keys, against ``np.isin``
  of every entry with the truth (which sorts them all together);
* ``catalogue_coverage``: items counted with ``bincount``, against ``np.unique`` of the lists;
* ranked-candidate NDCG at every K for two orders (``grouped_ndcg_at``: one sort per order),
  against one ``grouped_ndcg`` per K and order (two sorts and an ``np.unique`` each);
* the ranked candidates sorted by score within their query, which GAUC and NDCG start with:
  ``funnelrec.arrays.grouped_lexsort`` (blocks of whole queries, each cache-sized) against one
  ``np.lexsort`` of every row (with a cache miss per step once the rows outgrow the caches);
* the distinct ``(user, item)`` pair codes of the ranked candidates, which labelling them
  starts with (``rank.label_match.index_exposures``): ``funnelrec.arrays.unique_sorted``, a
  sort, against ``np.unique``, which in NumPy >= 2.3 goes through a hash table first.

The lists and candidates are random (seeded), so the values mean nothing; the shapes are those
of ``benchmarks/scaling.py`` at 10M rows (41,087 evaluated queries, 200-wide lists over 235,077
items; 500 scored candidates per query, a sample of ``--ndcg-queries`` queries by default).

    .venv/bin/python benchmarks/eval_metrics.py [--queries 41087] [--ndcg-queries 12000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _common import render, write_json
from funnelrec.arrays import grouped_lexsort, unique_sorted
from funnelrec.metrics.rank import grouped_ndcg, grouped_ndcg_at
from funnelrec.metrics.topn import catalogue_coverage, hit_matrix

NAME = "eval_metrics"
KS = (10, 20, 50, 100, 200)


def isin_hit_matrix(
    recs: NDArray[np.int64], truth_ptr: NDArray[np.int64], truth_idx: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """The reference: ``np.isin`` of every row-keyed entry with the row-keyed truth."""
    n_rows = recs.shape[0]
    width = int(max(recs.max(initial=0), np.max(truth_idx, initial=0))) + 2
    truth_keys = np.repeat(np.arange(n_rows), np.diff(truth_ptr)) * width + truth_idx
    rec_keys = np.arange(n_rows)[:, None] * width + recs
    return np.isin(rec_keys, truth_keys) & (recs >= 0)


def unique_coverage(recs: NDArray[np.int64], n_items: int, k: int) -> float:
    """The reference: distinct items of the top-k lists by ``np.unique``."""
    top = recs[:, :k]
    return float(np.unique(top[top >= 0]).shape[0] / n_items)


def per_k_ndcg(
    value: NDArray[np.float64], orders: list[NDArray[np.float64]], group: NDArray[np.int64]
) -> list[dict[int, float]]:
    """The reference: one ``grouped_ndcg`` call per order and K."""
    return [{k: grouped_ndcg(value, order, group, k) for k in KS} for order in orders]


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` calls (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=41_087)
    parser.add_argument("--items", type=int, default=235_077)
    parser.add_argument("--width", type=int, default=200)
    parser.add_argument("--ndcg-queries", type=int, default=12_000)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    recs = rng.integers(0, args.items, (args.queries, args.width))
    recs[::10, args.width // 2 :] = -1  # padded rows
    lens = rng.integers(1, 20, args.queries)
    truth_ptr = np.concatenate([[0], np.cumsum(lens)])
    truth_idx = rng.integers(0, args.items, int(truth_ptr[-1]))
    n = args.ndcg_queries * args.candidates
    group = np.repeat(np.arange(args.ndcg_queries), args.candidates)
    value = np.where(rng.random(n) < 0.01, 1.0, 0.0)
    orders = [
        -rng.permutation(n).astype(np.float64),
        -np.tile(np.arange(args.candidates), args.ndcg_queries).astype(np.float64),
    ]
    # Each query is one user; its candidates are distinct items (a few repeats across users).
    users = rng.integers(0, args.queries * 5, args.ndcg_queries)
    pair_codes = (np.repeat(users, args.candidates) << 32) | rng.integers(0, args.items, n)

    cases = {
        "hit_matrix": (
            lambda: hit_matrix(recs, truth_ptr, truth_idx),
            lambda: isin_hit_matrix(recs, truth_ptr, truth_idx),
            np.array_equal,
        ),
        "catalogue_coverage (every K)": (
            lambda: [catalogue_coverage(recs, args.items, k) for k in KS],
            lambda: [unique_coverage(recs, args.items, k) for k in KS],
            lambda a, b: a == b,
        ),
        "ranked NDCG (every K, 2 orders)": (
            lambda: [grouped_ndcg_at(value, order, group, KS) for order in orders],
            lambda: per_k_ndcg(value, orders, group),
            lambda a, b: a == b,
        ),
        "sort within queries": (
            lambda: grouped_lexsort((orders[0],), group),
            lambda: np.lexsort((orders[0], group)),
            np.array_equal,
        ),
        "distinct pair codes": (
            lambda: unique_sorted(pair_codes),
            lambda: np.unique(pair_codes),
            np.array_equal,
        ),
    }
    rows, out = [], {}
    for name, (library, reference, same) in cases.items():
        ref_s, ref_value = timed(reference, args.repeats)
        lib_s, lib_value = timed(library, args.repeats)
        equal = bool(same(lib_value, ref_value))
        rows.append([name, ref_s, lib_s, ref_s / lib_s, str(equal)])
        out[name] = {"reference_s": ref_s, "library_s": lib_s, "equal": equal}
    render(
        f"evaluation metrics: {args.queries} x {args.width} lists; NDCG over {n:,} candidates (s)",
        ["metric", "reference s", "library s", "speed-up", "equal"],
        rows,
    )
    write_json(NAME, {"args": vars(args), "cases": out})


if __name__ == "__main__":
    main()
