"""Multi-channel merge with per-channel quotas, de-duplication and provenance.

Channels are taken in priority order (the order of ``quotas``). Each channel contributes its best
``quota`` items not already taken by a higher-priority channel; if the merged list is still short
of ``k``, it is filled from the channels' remaining items, interleaved by their in-channel rank.
Every candidate keeps the channel that contributed it (``source``) and every channel that
retrieved it (``sources``), which later stages and the per-channel report use.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.recall.base import ChannelResult


class MergeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(300, gt=0, description="Size of the merged candidate set per query.")
    quotas: dict[str, int] = Field(
        default_factory=dict,
        description="Channel -> guaranteed slots, in priority order. Channels left out get 0.",
    )


def _long(result: ChannelResult, query_id: np.ndarray, priority: int) -> pl.DataFrame:
    b, k = result.item_idx.shape
    flat = result.item_idx.ravel()
    keep = flat >= 0
    return pl.DataFrame(
        {
            "query_id": np.repeat(query_id, k)[keep],
            "item_idx": flat[keep].astype(np.int32),
            "source": np.full(int(keep.sum()), result.channel),
            "source_rank": np.tile(np.arange(1, k + 1, dtype=np.int32), b)[keep],
            "recall_score": result.score.ravel()[keep].astype(np.float32),
            "priority": np.full(int(keep.sum()), priority, dtype=np.int32),
        }
    )


def merge_channels(
    results: list[ChannelResult], query_id: np.ndarray, config: MergeConfig
) -> pl.DataFrame:
    """Merge channel results into the Candidates table.

    Args:
        results: one ChannelResult per channel, rows aligned with ``query_id`` ``[B]``.
        query_id: ``[B]`` query ids.
        config: merged size and quotas.

    Returns:
        Candidates: ``query_id, item_idx, source, source_rank, recall_score, sources (list),
        merged_rank`` (1-based), at most ``config.k`` rows per query, sorted by query and
        merged_rank.
    """
    names = [r.channel for r in results]
    unknown = set(config.quotas) - set(names)
    if unknown:
        raise ValueError(f"merge quotas name unknown channels {sorted(unknown)}; have {names}")
    order = [n for n in config.quotas if n in names] + [n for n in names if n not in config.quotas]
    by_name = {r.channel: r for r in results}
    long = pl.concat(
        [_long(by_name[n], np.asarray(query_id), p) for p, n in enumerate(order)], how="vertical"
    )
    schema_cols = ["query_id", "item_idx", "source", "source_rank", "recall_score"]
    if long.height == 0:
        return pl.DataFrame(
            schema={
                **long.select(schema_cols).schema,
                "sources": pl.List(pl.String),
                "merged_rank": pl.Int32,
            }
        )
    sources = long.group_by("query_id", "item_idx").agg(
        pl.col("source").sort_by("priority").alias("sources")
    )
    # Quota pass: channel by channel, best quota items not yet taken.
    taken = long.clear().select("query_id", "item_idx", "priority", "source_rank")
    parts = []
    for p, name in enumerate(order):
        quota = config.quotas.get(name, 0)
        if quota <= 0:
            continue
        mine = (
            long.filter(pl.col("priority") == p)
            .join(taken, on=["query_id", "item_idx"], how="anti")
            .sort("query_id", "source_rank")
            .group_by("query_id", maintain_order=True)
            .head(quota)
        )
        parts.append(mine)
        taken = pl.concat([taken, mine.select(taken.columns)])
    chosen = pl.concat(parts) if parts else long.clear()
    # Fill pass: remaining items, interleaved by in-channel rank then channel priority.
    rest = (
        long.join(chosen.select("query_id", "item_idx"), on=["query_id", "item_idx"], how="anti")
        .sort("query_id", "source_rank", "priority")
        .unique(["query_id", "item_idx"], keep="first", maintain_order=True)
    )
    merged = (
        pl.concat(
            [
                chosen.with_columns(pl.lit(0).alias("_pass")),
                rest.with_columns(pl.lit(1).alias("_pass")),
            ]
        )
        .sort("query_id", "_pass", "source_rank", "priority")
        .group_by("query_id", maintain_order=True)
        .head(config.k)
    )
    merged = merged.with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("query_id").alias("merged_rank")
    )
    return (
        merged.join(sources, on=["query_id", "item_idx"], how="left")
        .select(*schema_cols, "sources", "merged_rank")
        .sort("query_id", "merged_rank")
    )


def candidates_to_matrix(candidates: pl.DataFrame, query_id: np.ndarray, k: int) -> np.ndarray:
    """Candidates -> ``[B, k]`` item_idx matrix in merged order (-1 padding), rows = query_id."""
    row_of = {int(q): r for r, q in enumerate(np.asarray(query_id))}
    out = np.full((len(row_of), k), -1, dtype=np.int32)
    if candidates.height == 0:
        return out
    top = candidates.filter(pl.col("merged_rank") <= k)
    rows = top["query_id"].replace_strict(row_of, return_dtype=pl.Int64).to_numpy()
    out[rows, top["merged_rank"].to_numpy() - 1] = top["item_idx"].to_numpy()
    return out
