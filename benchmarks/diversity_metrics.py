"""Cost of the offline diversity metrics (ILD over item vectors, category ILD / coverage).

Times ``eval.funnel.diversity_metrics`` on MovieLens-1M-shaped lists (``--queries`` held-out
users, ``--lists`` lists per run: the channels, merged, ranked, re-ranked), twice:

* at every K of the default ``eval.ks`` (10, 20, 50, 100, 200): what ``eval.lists`` computed
  before diversity was limited to the K the reports show;
* at the smallest K only: what it computes now (``eval.lists.DIVERSITY_K``).

The lists are random distinct items (a seeded permutation per row), the vectors Gaussian and
the categories Zipf-like, so the values themselves mean nothing; the JSON also holds the values
at the smallest K so two runs of the script on different code can be compared for equality.

    .venv/bin/python benchmarks/diversity_metrics.py [--queries 6040] [--lists 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numpy.typing import NDArray

from _common import render, write_json
from funnelrec.eval.funnel import diversity_metrics
from funnelrec.rerank.base import ItemSide

NAME = "diversity_metrics"
KS = (10, 20, 50, 100, 200)


def random_lists(rng: np.random.Generator, n_rows: int, n_items: int, k: int) -> NDArray[np.int32]:
    """``[n_rows, k]`` distinct items per row, with a -1 tail on every tenth row (padding)."""
    out = np.argsort(rng.random((n_rows, n_items)), axis=1)[:, :k].astype(np.int32)
    out[::10, k // 2 :] = -1
    return out


def time_lists(
    lists: list[NDArray[np.int32]], side: ItemSide, ks: tuple[int, ...]
) -> tuple[float, dict[str, float]]:
    """Seconds to compute every list's diversity at each K in ``ks``; the first list's values."""
    start = time.perf_counter()
    first: dict[str, float] = {}
    for i, matrix in enumerate(lists):
        for k in ks:
            values = diversity_metrics(matrix, side, k)
            if i == 0:
                first.update(values)
    return time.perf_counter() - start, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lists", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    side = ItemSide(
        embeddings=rng.standard_normal((args.items, args.dim)).astype(np.float32),
        category=np.minimum(rng.zipf(1.5, args.items), 18).astype(np.int32) - 1,
    )
    lists = [random_lists(rng, args.queries, args.items, KS[-1]) for _ in range(args.lists)]
    every_k = min(time_lists(lists, side, KS)[0] for _ in range(args.repeats))
    smallest_k, values = time_lists(lists, side, KS[:1])
    smallest_k = min([smallest_k, *(time_lists(lists, side, KS[:1])[0] for _ in range(1))])
    rows = [["every K", every_k], ["smallest K", smallest_k]]
    render(f"diversity metrics, {args.lists} lists x {args.queries} queries (s)", ["ks", "s"], rows)
    write_json(
        NAME,
        {
            "args": vars(args),
            "seconds_every_k": every_k,
            "seconds_smallest_k": smallest_k,
            "values_smallest_k": values,
        },
    )


if __name__ == "__main__":
    main()
