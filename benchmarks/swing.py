"""Swing vs ItemCF recall: quality and fit time on MovieLens-100k and the simulator.

Leave-last-out: each user's last positive is held out (when it is an item they had not
interacted with before); every channel is fitted on the rest and asked for 50 items per user
(seen items excluded). Reported: HitRate@10/@50 and fit time (seconds, after a warm-up fit,
so numba compilation is excluded). ItemCF uses ``for_leave_last_out`` (no fit-time pair-age
decay), ItemCF plain is textbook cosine co-occurrence, Swing its defaults (cap 200 users/item).

    .venv/bin/python benchmarks/swing.py [--sim-interactions 200000]
"""

from __future__ import annotations

import argparse
import time

import polars as pl

from _common import load_tables, render, write_json
from funnelrec.data.dataset import Dataset
from funnelrec.data.events import positive_expr
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.swing import Swing, SwingConfig

CHANNELS = {
    "itemcf": lambda: ItemCF(ItemCFConfig.for_leave_last_out(k=50)),
    "itemcf_plain": lambda: ItemCF(ItemCFConfig.plain(k=50)),
    "swing": lambda: Swing(SwingConfig(k=50)),
    "swing_uncapped": lambda: Swing(SwingConfig(k=50, max_users_per_item=None)),
}


def split(interactions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(train, held-out item per user): the item a user reached last for the first time;
    train keeps everything before that moment, so the held item is new to the user."""
    first = (
        interactions.filter(positive_expr(None))
        .group_by("user_id", "item_id")
        .agg(pl.col("timestamp").min())
        .sort("user_id", "timestamp", "item_id")
    )
    last = first.group_by("user_id", maintain_order=True).last()
    cut = last.select("user_id", pl.col("timestamp").alias("cut"))
    train = interactions.join(cut, on="user_id", how="left").filter(
        pl.col("cut").is_null() | (pl.col("timestamp") < pl.col("cut"))
    )
    return train.drop("cut"), last.select("user_id", "item_id")


def evaluate(train: pl.DataFrame, held: pl.DataFrame) -> dict[str, dict[str, float]]:
    data = Dataset.build(train)
    held = held.join(train.select("user_id").unique(), on="user_id", how="semi")
    out: dict[str, dict[str, float]] = {}
    for name, make in CHANNELS.items():
        make().fit(data)  # warm-up: numba compilation is not timed
        start = time.perf_counter()
        model = make().fit(data)
        fit_s = time.perf_counter() - start
        recs = model.recommend(held["user_id"], k=50)
        hits = recs.join(held, on=["user_id", "item_id"], how="inner")
        n = held.height
        out[name] = {
            "hit@10": hits.filter(pl.col("rank") <= 10).height / n,
            "hit@50": hits.height / n,
            "fit_s": fit_s,
            "users": float(n),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-interactions", type=int, default=200_000)
    args = parser.parse_args()
    results: dict = {}
    rows = []
    for dataset in ("movielens-100k", "simulator"):
        tables = load_tables(dataset, sim_interactions=args.sim_interactions)
        if tables is None:
            continue
        train, held = split(tables.interactions)
        results[dataset] = evaluate(train, held)
        for name, m in results[dataset].items():
            rows.append([dataset, name, m["hit@10"], m["hit@50"], m["fit_s"]])
    render(
        "Swing vs ItemCF (leave-last-out)",
        ["dataset", "channel", "hit@10", "hit@50", "fit s"],
        rows,
    )
    write_json("swing", {"sim_interactions": args.sim_interactions, "results": results})


if __name__ == "__main__":
    main()
