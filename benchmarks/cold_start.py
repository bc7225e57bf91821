"""Cold start: new items (first seen in the test period) and new users (no history).

Global temporal split; before querying, the metadata of items created after the cutoff is
ingested (``Recommender.ingest_items``), as a production system would at publication time, so
channels that can embed new items may recall them. Reported from metrics.json slices:

* cold items: Recall@50 / NDCG@50 over the held-out interactions with items the training data
  never saw: content channel (fresh pool, and whole catalogue) vs popularity, and the fresh
  pool with code-prefix statistics (``prefix_prior``: each item, new ones included, inherits
  the popularity of its RQ-KMeans semantic-id prefix; docs/recall.md, "Semantic ids");
* cold users: Recall@50 / NDCG@50 for held-out users with no history: demographic-group
  popularity vs global and recent popularity.

Datasets: the simulator and ../shared MovieLens-100k (titles + genres, u.user demographics).

    .venv/bin/python benchmarks/cold_start.py [--sim-interactions 1000000]
"""

from __future__ import annotations

import argparse

from _common import load_tables, render, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig, RecallConfig
from funnelrec.data.split import TemporalSplitConfig
from funnelrec.eval.protocol import run_experiment
from funnelrec.recall.cold_start import DemographicPopularConfig
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.popular import PopularConfig
from funnelrec.recall.prefix_prior import PrefixPriorConfig
from funnelrec.recall.two_tower import TwoTowerConfig

CHANNELS = {
    "content_fresh": ContentConfig(pool="fresh"),
    "content_all": ContentConfig(pool="all"),
    "demographic": DemographicPopularConfig(),
    "popular_global": PopularConfig(mode="global"),
    "popular_recent": PopularConfig(mode="recent"),
    # Default settings: new items enter through the id-dropout content path, new users
    # through the attribute features of the user tower.
    "two_tower": TwoTowerConfig(),
    # Last, so that adding it changes no other channel's fit (it draws nothing from the rng).
    "content_fresh_prefix": ContentConfig(pool="fresh", prefix_prior=PrefixPriorConfig()),
}
SLICES = {
    "cold_items": (
        "content_fresh",
        "content_fresh_prefix",
        "content_all",
        "two_tower",
        "popular_global",
        "popular_recent",
    ),
    "cold_users": ("demographic", "two_tower", "popular_global", "popular_recent"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=1_000_000)
    args = parser.parse_args()
    config = ExperimentConfig(
        split=TemporalSplitConfig(),
        recall=RecallConfig(
            channels=CHANNELS,
            merge=MergeConfig(k=200, quotas={"popular_recent": 200}),
        ),
        eval=EvalConfig(ks=(10, 50, 200)),
    )
    results: dict = {}
    rows = []
    for dataset in ("simulator", "movielens-100k"):
        tables = load_tables(dataset, sim_interactions=args.sim_interactions)
        if tables is None:
            continue
        metrics = run_experiment(tables.interactions, tables.items, tables.users, config).metrics
        results[dataset] = {
            "ingested_new_items": metrics["data"]["ingested_new_items"],
            "slices": {name: metrics["slices"][name] for name in SLICES},
        }
        for slice_name, channels in SLICES.items():
            part = metrics["slices"][slice_name]
            for channel in channels:
                if channel not in part:
                    continue
                rows.append(
                    [
                        dataset,
                        slice_name,
                        channel,
                        part["n_queries"],
                        part["n_truth"],
                        part[channel]["recall@50"],
                        part[channel]["ndcg@50"],
                        part[channel]["recall@200"],
                    ]
                )
    render(
        "Cold start (temporal split; new items ingested by metadata before querying)",
        ["dataset", "slice", "channel", "queries", "truth", "Recall@50", "NDCG@50", "Recall@200"],
        rows,
    )
    write_json("cold_start", {"results": results})


if __name__ == "__main__":
    main()
