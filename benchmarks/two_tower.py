"""Two-tower recall (in-batch + logQ; mixed; mixed + hard negatives) vs ItemCF vs popularity.

Datasets: ../shared MovieLens-100k and Taobao (skipped when absent) and the simulator. One
global temporal split per dataset; the four channels are fitted and evaluated in the same
``run_experiment`` call on the same queries (items published during the test period are
ingested by metadata before querying, so channels with ``add_items`` can retrieve them).
Also reported per two-tower channel: training samples/s on this machine's CPU, fit time,
index build time, retrieval queries/s (user tower + search + seen-item filtering), search-only
queries/s, and the ANN index's recall@k against exact search on the same vectors.

    .venv/bin/python benchmarks/two_tower.py [--sim-interactions 1000000] [--datasets ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import load_tables, render, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig, RecallConfig
from funnelrec.data.split import TemporalSplitConfig
from funnelrec.eval.protocol import run_experiment
from funnelrec.features.text import TextEncoderConfig
from funnelrec.index import ExactIndexConfig, HNSWIndexConfig, build_index, recall_at_k
from funnelrec.recall.base import Queries
from funnelrec.recall.itemcf import ItemCFConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.popular import PopularConfig
from funnelrec.recall.two_tower import HardNegativeConfig, TwoTower, TwoTowerConfig

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


def experiment(dataset: str) -> ExperimentConfig:
    return ExperimentConfig(
        split=TemporalSplitConfig(),
        recall=RecallConfig(
            channels=channels(dataset),
            merge=MergeConfig(k=200, quotas={"two_tower_logq": 100, "itemcf": 100}),
        ),
        eval=EvalConfig(ks=KS),
    )


def ann_recall(model: TwoTower, queries: Queries) -> float:
    """Recall@k (k = the channel's fetch size) of its ANN index against exact search over the
    same item vectors."""
    k = model.config.k
    vectors = model.user_vectors(queries)
    exact = build_index(ExactIndexConfig(), "ip")
    ids = model.index.ids
    exact.build(model.item_vectors[ids], ids)
    _, truth = exact.search(vectors, k)
    _, found = model.index.search(vectors, k)
    return recall_at_k(found, truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args()
    results: dict = {}
    rows = []
    total_start = time.perf_counter()
    for dataset in args.datasets:
        tables = load_tables(dataset, sim_interactions=args.sim_interactions)
        if tables is None:
            continue
        config = experiment(dataset)
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
                        "ann_recall_vs_exact": ann_recall(channel, probe),
                        "ann_recall_k": channel.config.k,
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
                    f"{entry['ann_recall_vs_exact']:.3f}" if name in TWO_TOWERS else "",
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
            "ANN recall@200",
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
