"""Two-tower recall (in-batch + logQ; mixed; mixed + hard negatives) vs ItemCF vs popularity.

Datasets: ../shared MovieLens-100k and Taobao (skipped when absent) and the simulator. One
global temporal split per dataset; the four channels are fitted and evaluated in the same
``run_experiment`` call on the same queries (items published during the test period are
ingested by metadata before querying, so channels with ``add_items`` can retrieve them).
Also reported per two-tower channel: training samples/s on this machine's CPU, fit time,
index build time, retrieval queries/s (user tower + search + seen-item filtering), search-only
queries/s, and, on its trained vectors, HNSW (the ``auto`` index's ANN) against Faiss IVF at
its defaults, each built afresh: build seconds, recall@k against exact search and the median
time of one query searched alone (user vectors of up to 2,000 training users as queries).

    .venv/bin/python benchmarks/two_tower.py [--sim-interactions 1000000] [--datasets ...]
        [--two-towers two_tower_logq ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import load_tables, render, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig, RecallConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.split import TemporalSplitConfig
from funnelrec.eval.protocol import run_experiment
from funnelrec.features.text import TextEncoderConfig
from funnelrec.index import (
    AutoIndexConfig,
    ExactIndexConfig,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndexConfig,
    build_index,
    recall_at_k,
)
from funnelrec.recall.base import Queries
from funnelrec.recall.itemcf import ItemCFConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.popular import PopularConfig
from funnelrec.recall.two_tower import HardNegativeConfig, TwoTower, TwoTowerConfig
from funnelrec.recall.vector_search import calibrate_on_users

DATASETS = ("movielens-100k", "taobao", "simulator")
TWO_TOWERS = ("two_tower_logq", "two_tower_mixed", "two_tower_mixed_hard")
KS = (50,)


def text_encoder(dataset: str) -> TextEncoderConfig | None:
    """MiniLM where items have real titles; hashing for the simulator's made-up words (MiniLM
    has no meaning for them and costs ~1 min per fit on 2 cores); none for Taobao, whose only
    item text is the category id the item tower already embeds."""
    if dataset == "movielens-100k":
        return TextEncoderConfig(kind="minilm")
    if dataset == "simulator":
        return TextEncoderConfig(kind="hashing")
    return None


# The HNSW index at every catalogue size (the default, "auto", searches catalogues up to 50k
# items exactly): this benchmark also measures the ANN index's recall against exact search.
INDEX = HNSWIndexConfig(ef_search=512)


def channels(dataset: str) -> dict:
    text = text_encoder(dataset)
    return {
        "two_tower_logq": TwoTowerConfig(text=text, index=INDEX),
        "two_tower_mixed": TwoTowerConfig(text=text, n_uniform_negatives=1024, index=INDEX),
        "two_tower_mixed_hard": TwoTowerConfig(
            text=text,
            n_uniform_negatives=1024,
            hard_negatives=HardNegativeConfig(),
            index=INDEX,
        ),
        "itemcf": ItemCFConfig(),
        "popular": PopularConfig(mode="recent"),
    }


def experiment(dataset: str, two_towers: list[str]) -> ExperimentConfig:
    chosen = {n: c for n, c in channels(dataset).items() if n not in TWO_TOWERS or n in two_towers}
    return ExperimentConfig(
        split=TemporalSplitConfig(),
        recall=RecallConfig(
            channels=chosen,
            merge=MergeConfig(k=200, quotas={two_towers[0]: 100, "itemcf": 100}),
        ),
        eval=EvalConfig(ks=KS),
    )


ANN_INDEXES: dict[str, IndexConfig] = {
    "hnsw": INDEX,
    "ivf": IVFIndexConfig(),
    "ivf_cal": AutoIndexConfig().ann,
}
"""The approximate indexes compared on each trained two-tower's vectors: HNSW at ``ef_search``
512, Faiss IVF at its fixed default ``nprobe`` and the ``auto`` index's IVF, whose ``nprobe``
is calibrated to its target recall on the channel's own training users (the calibration's
time counts as build time; its recall is then measured on the benchmark's queries)."""
ANN_NAMES = " / ".join(ANN_INDEXES)
SINGLE_QUERIES = 200


def ann_comparison(
    model: TwoTower, train: Dataset, queries: Queries
) -> dict[str, dict[str, float]]:
    """Per index of :data:`ANN_INDEXES`, built afresh on the channel's trained item vectors and
    searched with its user vectors of ``queries``: build seconds, recall@k against exact search
    (k = the channel's fetch size), batch queries/s and the median ms of one query searched
    alone (what a served request pays). Faiss threads as the process has them."""
    k = model.config.k
    vectors = model.user_vectors(queries)
    ids = model.index.ids
    items = model.item_vectors[ids]
    assert np.array_equal(ids, np.arange(ids.shape[0])), "calibration labels items 0..N-1"
    exact = build_index(ExactIndexConfig(), "ip")
    exact.build(items, ids)
    _, truth = exact.search(vectors, k)
    out: dict[str, dict[str, float]] = {}
    for name, config in ANN_INDEXES.items():
        index = build_index(config, "ip")
        start = time.perf_counter()
        index.build(items, ids)
        calibration = calibrate_on_users(
            index, items, train, model.user_vectors, k, model.config.seed
        )
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        _, found = index.search(vectors, k)
        batch_s = time.perf_counter() - start
        single = []
        for row in vectors[:SINGLE_QUERIES]:
            start = time.perf_counter()
            index.search(row[None, :], k)
            single.append(time.perf_counter() - start)
        out[name] = {
            "build_s": build_s,
            "recall_vs_exact": recall_at_k(found, truth),
            "batch_queries_per_s": vectors.shape[0] / max(batch_s, 1e-9),
            "single_query_ms": float(np.median(single)) * 1e3,
            **calibration,
        }
    return out


def _ann_cell(entry: dict, key: str, fmt: str) -> str:
    """``hnsw / ivf`` of one :func:`ann_comparison` measure, empty for other channels."""
    if "ann" not in entry:
        return ""
    return " / ".join(fmt.format(entry["ann"][name][key]) for name in ANN_INDEXES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--two-towers",
        nargs="+",
        default=list(TWO_TOWERS),
        choices=TWO_TOWERS,
        help="the two-tower variants fitted (ItemCF and popularity always run)",
    )
    args = parser.parse_args()
    results: dict = {}
    rows = []
    total_start = time.perf_counter()
    for dataset in args.datasets:
        tables = load_tables(dataset, sim_interactions=args.sim_interactions)
        if tables is None:
            continue
        config = experiment(dataset, args.two_towers)
        start = time.perf_counter()
        result = run_experiment(tables.interactions, tables.items, tables.users, config)
        seconds = time.perf_counter() - start
        metrics = result.metrics
        recommender = result.recommender
        train = result.train
        sample = np.arange(min(train.n_users, 2000), dtype=np.int32)
        probe = Queries.from_history(
            sample.astype(np.int64), sample, np.full(sample.shape[0], train.as_of), train.positives
        )
        block: dict = {
            "n_queries": metrics["split"]["n_queries"],
            "train_positives": metrics["data"]["train_positives"],
            "train_items": metrics["data"]["train_items"],
            "ingested_new_items": metrics["split"].get("ingested_new_items"),
            "text_encoder": None if text_encoder(dataset) is None else text_encoder(dataset).kind,
            "seconds": round(seconds, 1),
            "channels": {},
        }
        for name in config.recall.channels:
            values = metrics["recall"][name]
            entry = {f"recall@{k}": values[f"recall@{k}"] for k in KS}
            entry.update({f"ndcg@{k}": values[f"ndcg@{k}"] for k in KS})
            entry["fit_s"] = metrics["timings_s"][f"fit.{name}"]
            channel = recommender.channels[name]
            if isinstance(channel, TwoTower):
                stats = channel.stats
                entry.update(
                    {
                        "train_samples_per_s": stats["train_samples_per_s"],
                        "train_examples": stats["train_examples"],
                        "epochs": stats["epochs"],
                        "final_loss": stats["final_loss"],
                        "mining_s": stats["mining_s"],
                        "device": str(channel.device),
                        "index": channel.config.index.kind,
                        "index_build_s": stats["index_build_s"],
                        "index_items": len(channel.index),
                        "retrieve_queries_per_s": stats["queries_per_s"],
                        "search_queries_per_s": stats["search_queries_per_s"],
                        "ann_recall_k": channel.config.k,
                        "ann": ann_comparison(channel, train, probe),
                    }
                )
            block["channels"][name] = entry
            rows.append(
                [
                    dataset,
                    name,
                    block["n_queries"],
                    entry["recall@50"],
                    entry["ndcg@50"],
                    entry["fit_s"],
                    f"{entry['train_samples_per_s']:,.0f}" if name in TWO_TOWERS else "",
                    f"{entry['index_build_s']:.2f}" if name in TWO_TOWERS else "",
                    f"{entry['retrieve_queries_per_s']:,.0f}" if name in TWO_TOWERS else "",
                    _ann_cell(entry, "recall_vs_exact", "{:.3f}"),
                    _ann_cell(entry, "build_s", "{:.1f}"),
                    _ann_cell(entry, "single_query_ms", "{:.2f}"),
                ]
            )
        results[dataset] = block
    render(
        "Two-tower vs ItemCF vs popularity (temporal split, same queries per dataset)",
        [
            "dataset",
            "channel",
            "queries",
            "Recall@50",
            "NDCG@50",
            "fit s",
            "train samples/s",
            "index build s",
            "queries/s",
            f"ANN recall@200 {ANN_NAMES}",
            f"ANN build s {ANN_NAMES}",
            f"1-query ms {ANN_NAMES}",
        ],
        rows,
    )
    write_json(
        "two_tower",
        {
            "results": results,
            "torch_threads": torch.get_num_threads(),
            "total_s": round(time.perf_counter() - total_start, 1),
        },
    )


if __name__ == "__main__":
    main()
