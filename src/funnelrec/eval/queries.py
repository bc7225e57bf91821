"""Held-out requests and their truth: one query per test user, built through
``Recommender.queries`` (the serving path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.split import Split
from funnelrec.data.user_attributes import tag_lists
from funnelrec.data.vocab import Vocabulary
from funnelrec.pipeline.funnel import Funnel
from funnelrec.recall.base import Queries


@dataclass(frozen=True)
class EvalQueries:
    """Held-out requests and their truth (CSR over item_idx; unknown items get ids >= n_items)."""

    queries: Queries
    truth_ptr: NDArray[np.int64]
    truth_idx: NDArray[np.int64]
    n_cold_users: int  # queries whose user has no history at query time
    mask_ptr: NDArray[np.int64] | None = None
    mask_idx: NDArray[np.int64] | None = None
    user_ids: pl.Series | None = None  # external ids, rows aligned with the queries
    n_held_out_users: int = 0  # before the eval.max_queries sample (0: not recorded)


def build_eval_queries(
    split: Split,
    train: Dataset,
    config: ExperimentConfig,
    rng: np.random.Generator,
    recommender: Funnel,
    users: pl.DataFrame | None = None,
) -> EvalQueries:
    """One query per held-out user, as of the split's query time, with that user's truth.

    Queries are built by ``recommender.queries``, the path serving uses: history from the
    training positives, attributes of users the model does not know from ``users`` (a profile
    is known at request time, as new items' metadata is). The truth is mapped through the
    recommender's catalogue at query time (training items plus items ingested since).
    """
    item_vocab = recommender.item_vocab
    per_user = held_out_per_user(split, train, item_vocab, config)
    n_held_out_users = per_user.height
    if config.eval.max_queries is not None and per_user.height > config.eval.max_queries:
        rows = np.sort(rng.choice(per_user.height, config.eval.max_queries, replace=False))
        per_user = per_user[rows]
    lens = per_user["item_idx"].list.len().to_numpy()
    truth_ptr = np.zeros(per_user.height + 1, dtype=np.int64)
    np.cumsum(lens, out=truth_ptr[1:])
    truth_idx = per_user["item_idx"].explode().to_numpy().astype(np.int64)
    attributes = None
    if users is not None:
        attributes = per_user.select("user_id").join(
            users.with_columns(pl.col("user_id").cast(per_user["user_id"].dtype, strict=False)),
            on="user_id",
            how="left",
            maintain_order="left",
        )
    queries = recommender.queries(
        per_user["user_id"],
        per_user["query_ts"].to_numpy(),
        attributes=attributes,
        tags=None if attributes is None else tag_lists(attributes),  # onboarding choices
    )
    mask_ptr = mask_idx = None
    if split.masked is not None:
        masked = split.masked.with_columns(
            pl.Series("item_idx", item_vocab.encode(split.masked["item_id"])).cast(pl.Int64)
        ).filter(pl.col("item_idx") >= 0)
        per_query = (
            per_user.select("user_id").with_row_index("_q").join(masked, on="user_id", how="left")
        )
        per_query = per_query.sort("_q", "item_idx").filter(pl.col("item_idx").is_not_null())
        counts = np.bincount(per_query["_q"].to_numpy(), minlength=per_user.height)
        mask_ptr = np.zeros(per_user.height + 1, dtype=np.int64)
        np.cumsum(counts, out=mask_ptr[1:])
        mask_idx = per_query["item_idx"].to_numpy()
    n_without_history = int((queries.history_len == 0).sum())
    return EvalQueries(
        queries,
        truth_ptr,
        truth_idx,
        n_without_history,
        mask_ptr,
        mask_idx,
        per_user["user_id"],
        n_held_out_users,
    )


def held_out_per_user(
    split: Split, train: Dataset, item_vocab: Vocabulary, config: ExperimentConfig
) -> pl.DataFrame:
    """One row per held-out user, sorted by ``user_id``: ``user_idx``, ``query_ts`` (the
    user's first test time) and ``item_idx`` (the sorted truth; items ``item_vocab`` does not
    know get distinct ids past it, so they still count in the denominator). With
    ``eval.exclude_seen_targets``, items the user had in training are not truth, and a user
    left without truth is not held out.
    """
    test = split.test.with_columns(
        pl.Series("user_idx", train.user_vocab.encode(split.test["user_id"])),
        pl.Series("item_idx", item_vocab.encode(split.test["item_id"]).astype(np.int64)),
    )
    # Items the model cannot know still count in the denominator: give each a distinct id.
    unknown = test.filter(pl.col("item_idx") < 0).select("item_id").unique().sort("item_id")
    unknown = unknown.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + len(item_vocab)).alias("_new_idx")
    )
    test = (
        test.join(unknown, on="item_id", how="left")
        .with_columns(pl.coalesce(pl.col("_new_idx"), pl.col("item_idx")).alias("item_idx"))
        .drop("_new_idx")
    )
    if config.eval.exclude_seen_targets:
        seen = train.positives.select("user_idx", pl.col("item_idx").cast(pl.Int64))
        test = test.join(seen.unique(), on=["user_idx", "item_idx"], how="anti")
    return (
        test.group_by("user_id")
        .agg(
            pl.col("user_idx").first(),
            pl.col("query_ts").min(),
            pl.col("item_idx").unique().sort(),
        )
        .sort("user_id")
    )
