"""Multi-channel merge (per-channel quotas, or weighted reciprocal-rank fusion), with
de-duplication and provenance.

Quotas: channels are taken in priority order (the order of ``quotas``). Each channel
contributes its best ``quota`` items not already taken by a higher-priority channel; if the
merged list is still short of ``k``, it is filled from the channels' remaining items,
interleaved by their in-channel rank. RRF: see :class:`MergeConfig`. Every candidate keeps the
channel that contributed it (``source``) and every channel that retrieved it (``sources``),
which later stages and the per-channel report use.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numba
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.recall.base import ChannelResult


class MergeConfig(BaseModel):
    """How channel lists become one candidate list.

    ``method="quotas"``: each channel's guaranteed slots, interleaved by in-channel rank.
    ``method="rrf"``: weighted reciprocal-rank fusion, an item scores
    ``sum_c weights[c] / (rrf_k + rank_c)`` over the channels that returned it, and the
    merged list is the ``k`` best by that score (the funnel fits the weights on the end of
    the training span when ``tune`` is on: :mod:`funnelrec.pipeline.merge_tuning`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(300, gt=0, description="Size of the merged candidate set per query.")
    quotas: dict[str, int] = Field(
        default_factory=dict,
        description="Channel -> guaranteed slots, in priority order. Channels left out get 0.",
    )
    method: Literal["quotas", "rrf"] = "quotas"
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="rrf: channel -> weight (channels left out weigh 1).",
    )
    rrf_k: int = Field(60, ge=0, description="rrf: the rank offset (Cormack et al. use 60).")
    tune: bool = Field(
        True,
        description="Fit rrf weights on the end of the training span and use them unless they "
        "lose to the configured merge on the guard slice (docs/guards.md).",
    )


@numba.njit(cache=True)
def _outputs(
    n_queries: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The merged lists both kernels fill: item (-1 = none), source channel, rank in that
    channel, channel mask, and the list length per query."""
    return (
        np.full((n_queries, k), -1, dtype=np.int32),
        np.zeros((n_queries, k), dtype=np.int32),
        np.zeros((n_queries, k), dtype=np.int32),
        np.zeros((n_queries, k), dtype=np.int64),
        np.zeros(n_queries, dtype=np.int32),
    )


@numba.njit(cache=True)
def _merge_kernel(
    item: np.ndarray,  # [C, B, K] int32, channels in priority order, -1 = padding
    quota: np.ndarray,  # [C] int64
    k: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_channels, n_queries, width = item.shape
    out_item, out_channel, out_rank, out_mask, out_n = _outputs(n_queries, k)
    # Per-item scratch, valid for the query whose stamp it carries (no reset per query).
    stamp = np.full(n_items, -1, dtype=np.int64)
    mask = np.zeros(n_items, dtype=np.int64)
    chosen = np.zeros(n_items, dtype=np.bool_)
    best = np.zeros(n_items, dtype=np.int64)  # min rank * C + channel over the channels
    keys = np.empty(n_channels * width, dtype=np.int64)
    for b in range(n_queries):
        for c in range(n_channels):
            for r in range(width):
                it = item[c, b, r]
                if it < 0:
                    continue
                key = r * n_channels + c
                if stamp[it] != b:
                    stamp[it] = b
                    mask[it] = 0
                    chosen[it] = False
                    best[it] = key
                mask[it] |= 1 << c
                if key < best[it]:
                    best[it] = key
        # Quota pass: each channel's best items not taken by a higher-priority channel.
        n_chosen = 0
        for c in range(n_channels):
            taken = 0
            for r in range(width):
                if taken >= quota[c]:
                    break
                it = item[c, b, r]
                if it < 0 or chosen[it]:
                    continue
                chosen[it] = True
                keys[n_chosen] = r * n_channels + c
                n_chosen += 1
                taken += 1
        first = np.sort(keys[:n_chosen])
        # Fill pass: every other item at its best (rank, channel), interleaved by rank.
        n_rest = 0
        for c in range(n_channels):
            for r in range(width):
                it = item[c, b, r]
                if it < 0 or chosen[it]:
                    continue
                key = r * n_channels + c
                if best[it] == key:
                    keys[n_rest] = key
                    n_rest += 1
        rest = np.sort(keys[:n_rest])
        n = 0
        for part in (first, rest):
            for key in part:
                if n >= k:
                    break
                r = key // n_channels
                c = key % n_channels
                it = item[c, b, r]
                out_item[b, n] = it
                out_channel[b, n] = c
                out_rank[b, n] = r + 1
                out_mask[b, n] = mask[it]
                n += 1
        out_n[b] = n
    return out_item, out_channel, out_rank, out_mask, out_n


@numba.njit(cache=True)
def _rrf_kernel(
    item: np.ndarray,  # [C, B, K] int32, -1 = padding
    weight: np.ndarray,  # [C] float64
    rrf_k: int,
    k: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted reciprocal-rank fusion per query; same outputs as ``_merge_kernel``. The
    source of an item is the channel whose term contributed most (ties: priority order)."""
    n_channels, n_queries, width = item.shape
    out_item, out_channel, out_rank, out_mask, out_n = _outputs(n_queries, k)
    stamp = np.full(n_items, -1, dtype=np.int64)
    score = np.zeros(n_items, dtype=np.float64)
    best = np.zeros(n_items, dtype=np.float64)
    src = np.zeros(n_items, dtype=np.int64)
    src_rank = np.zeros(n_items, dtype=np.int64)
    mask = np.zeros(n_items, dtype=np.int64)
    touched = np.empty(n_channels * width, dtype=np.int64)
    for b in range(n_queries):
        n_touched = 0
        for c in range(n_channels):
            for r in range(width):
                it = item[c, b, r]
                if it < 0:
                    continue
                term = weight[c] / (rrf_k + r + 1.0)
                if stamp[it] != b:
                    stamp[it] = b
                    score[it] = 0.0
                    best[it] = -1.0
                    mask[it] = 0
                    touched[n_touched] = it
                    n_touched += 1
                score[it] += term
                mask[it] |= 1 << c
                if term > best[it]:
                    best[it] = term
                    src[it] = c
                    src_rank[it] = r + 1
        cand = touched[:n_touched]
        keys = np.empty(n_touched, dtype=np.float64)
        for i in range(n_touched):
            keys[i] = -score[cand[i]]
        order = np.argsort(keys, kind="mergesort")  # stable: ties keep first-seen order
        n = min(k, n_touched)
        for j in range(n):
            it = cand[order[j]]
            out_item[b, j] = it
            out_channel[b, j] = src[it]
            out_rank[b, j] = src_rank[it]
            out_mask[b, j] = mask[it]
        out_n[b] = n
    return out_item, out_channel, out_rank, out_mask, out_n


def _run_kernel(
    items: np.ndarray, order: list[str], config: MergeConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The configured kernel over ``items`` ``[C, B, K]`` (channels in ``order``)."""
    n_items = max(int(items.max()) + 1 if items.size else 0, 1)
    if config.method == "rrf":
        weight = np.array([config.weights.get(n, 1.0) for n in order], dtype=np.float64)
        return _rrf_kernel(items, weight, config.rrf_k, config.k, n_items)
    quota = np.array([config.quotas.get(n, 0) for n in order], dtype=np.int64)
    return _merge_kernel(items, quota, config.k, n_items)


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
    if len(names) > 62:
        raise ValueError(f"at most 62 channels can be merged, got {len(names)}")
    order = [n for n in config.quotas if n in names] + [n for n in names if n not in config.quotas]
    by_name = {r.channel: r for r in results}
    query_id = np.asarray(query_id)
    n_queries = query_id.shape[0]
    width = max((by_name[n].item_idx.shape[1] for n in order), default=0)
    items = np.full((len(order), n_queries, width), -1, dtype=np.int32)
    scores = np.full((len(order), n_queries, width), -np.inf, dtype=np.float32)
    for c, name in enumerate(order):
        result = by_name[name]
        if result.item_idx.shape[0] != n_queries:
            raise ValueError(
                f"channel '{name}' has {result.item_idx.shape[0]} rows for {n_queries} queries"
            )
        items[c, :, : result.item_idx.shape[1]] = result.item_idx
        scores[c, :, : result.score.shape[1]] = result.score
    item, channel, rank, mask, n = _run_kernel(items, order, config)
    keep = np.arange(config.k)[None, :] < n[:, None]
    rows, cols = np.nonzero(keep)
    channel = channel[keep]
    rank = rank[keep]
    masks = mask[keep]
    # Names gathered from one small Series, the channel-set lists built as one Arrow list
    # array from the mask bits: no per-row Python objects (this runs for every request).
    bits = (masks[:, None] >> np.arange(len(order))) & 1 == 1
    offsets = np.zeros(masks.shape[0] + 1, dtype=np.int64)
    np.cumsum(bits.sum(axis=1), out=offsets[1:])
    names = pa.array(order, type=pa.large_string()).take(pa.array(np.nonzero(bits)[1]))
    sources = pl.Series("sources", pa.LargeListArray.from_arrays(pa.array(offsets), names))
    return pl.DataFrame(
        [
            pl.Series("query_id", query_id[rows]),
            pl.Series("item_idx", item[keep], dtype=pl.Int32),
            pl.Series("source", pa.array(order, type=pa.large_string()).take(channel)),
            pl.Series("source_rank", rank, dtype=pl.Int32),
            pl.Series("recall_score", scores[channel, rows, rank - 1], dtype=pl.Float32),
            sources,
            pl.Series("merged_rank", cols + 1, dtype=pl.Int32),
        ]
    )


RankLike = TypeVar("RankLike", pl.Expr, np.ndarray)


def merge_relevance(merged_rank: RankLike, rrf_k: int) -> RankLike:
    """The score of a candidate when nothing ranks it: ``1 / (rrf_k + merged_rank)``, the
    reciprocal-rank scale of the merge itself. Channel scores (``recall_score``) live on
    different scales per channel, so they cannot order or weigh a merged list; this is
    monotone in the merge order and decays like RRF, which is what a re-ranker's relevance
    needs.

    Example:
        >>> merge_relevance(np.array([1, 2]), 60).round(5).tolist()
        [0.01639, 0.01613]
    """
    return 1.0 / (rrf_k + merged_rank)


def candidates_to_matrix(
    candidates: pl.DataFrame, query_id: np.ndarray, k: int, rank_column: str = "merged_rank"
) -> np.ndarray:
    """Candidates -> ``[B, k]`` item_idx matrix in ``rank_column`` order (1-based; -1
    padding), rows = query_id."""
    row_of = {int(q): r for r, q in enumerate(np.asarray(query_id))}
    out = np.full((len(row_of), k), -1, dtype=np.int32)
    if candidates.height == 0:
        return out
    top = candidates.filter(pl.col(rank_column) <= k)
    rows = top["query_id"].replace_strict(row_of, return_dtype=pl.Int64).to_numpy()
    out[rows, top[rank_column].to_numpy() - 1] = top["item_idx"].to_numpy()
    return out
