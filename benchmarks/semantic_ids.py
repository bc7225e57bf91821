"""Semantic ids: codebook utilisation and collision rate of RQ-KMeans and hierarchical tags.

Item text -> content embedding (the default encoder: MiniLM for MovieLens titles, the fitted
hashing encoder for the simulator's made-up words) -> codes. Two texts per dataset: the title
alone, and the default item text the content channel embeds (title, category, genres). Per
method: codebook size and utilisation per level (share of codes used), perplexity per level
(exp entropy: how evenly the used codes are filled), distinct full codes, collision rate
(share of items sharing their full code with another item), the largest bucket, NMI between
the first level and the item category (do coarse codes find topics?), and fit time.

Datasets: ../shared MovieLens-100k (skipped with a note when absent) and the simulator.

    .venv/bin/python benchmarks/semantic_ids.py [--sim-interactions 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl
from sklearn.metrics import normalized_mutual_info_score

from _common import load_tables, render, write_json
from funnelrec.features.semantic_ids import (
    HierarchicalConfig,
    RQKMeansConfig,
    build_semantic_ids,
    code_stats,
)
from funnelrec.features.text import TextEncoderConfig, encode_texts, item_text

METHODS = {
    "rq 3x256": RQKMeansConfig(),
    "rq 4x256": RQKMeansConfig(levels=4),  # one more level: fewer collisions, longer codes
    "tags 16/128/1024": HierarchicalConfig(),
}
TEXTS = {"title": ("title",), "item text": None}


def _fmt(values: tuple[float, ...] | tuple[int, ...], digits: int = 0) -> str:
    return "/".join(f"{v:.{digits}f}" for v in values)


def measure(items: pl.DataFrame, columns: tuple[str, ...] | None) -> tuple[list, list[dict]]:
    """Rows of the table and JSON records for one items table and text choice."""
    texts = item_text(items, columns)
    vectors = encode_texts(texts, TextEncoderConfig())
    has = np.abs(vectors).sum(axis=1) > 0
    category = items["category"].cast(pl.String).fill_null("").to_numpy()[has]
    rows, records = [], []
    for name, config in METHODS.items():
        start = time.perf_counter()
        model = build_semantic_ids(config).fit(vectors[has])
        codes = model.encode(vectors[has])
        seconds = time.perf_counter() - start
        stats = code_stats(codes, model.sizes)
        nmi = float(normalized_mutual_info_score(category, codes[:, 0]))
        rows.append(
            [
                name,
                stats.n_items,
                _fmt(stats.sizes),
                _fmt(stats.utilisation, 2),
                _fmt(stats.perplexity),
                stats.distinct_prefixes[-1],
                stats.collision_rate,
                stats.max_bucket,
                nmi,
                f"{seconds:.1f}",
            ]
        )
        records.append(
            {"method": name, **stats.as_dict(), "nmi_level1_category": nmi, "fit_s": seconds}
        )
    return rows, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    args = parser.parse_args()
    results: dict = {}
    table = []
    for dataset in ("movielens-100k", "simulator"):
        tables = load_tables(dataset, sim_interactions=args.sim_interactions)
        if tables is None or tables.items is None:
            continue
        results[dataset] = {}
        for text, columns in TEXTS.items():
            rows, records = measure(tables.items, columns)
            results[dataset][text] = records
            table += [[dataset, text, *row] for row in rows]
    render(
        "Semantic ids: codebook utilisation and collisions",
        [
            "dataset",
            "text",
            "method",
            "items",
            "sizes",
            "utilisation",
            "perplexity",
            "full codes",
            "collision rate",
            "max bucket",
            "NMI(l1, category)",
            "fit s",
        ],
        table,
    )
    write_json("semantic_ids", {"results": results})


if __name__ == "__main__":
    main()
