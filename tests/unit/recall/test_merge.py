import numpy as np
import polars as pl
import pytest

from funnelrec.recall.base import ChannelResult
from funnelrec.recall.merge import MergeConfig, candidates_to_matrix, merge_channels


def _result(name: str, rows: list[list[int]]) -> ChannelResult:
    idx = np.array(rows, dtype=np.int32)
    score = np.where(idx >= 0, -np.arange(idx.shape[1], dtype=np.float32), -np.inf)
    return ChannelResult(name, idx, score.astype(np.float32))


def test_quotas_dedupe_and_provenance() -> None:
    a = _result("a", [[1, 2, 3, 4]])
    b = _result("b", [[2, 5, 6, -1]])
    out = merge_channels([a, b], np.array([7]), MergeConfig(k=4, quotas={"a": 2, "b": 2}))
    # a takes its best two (1, 2); b's best two not taken: 5, 6 (2 is already a's).
    # Merged order interleaves by in-channel rank (5 and 6 are b's 2nd and 3rd).
    assert out["item_idx"].to_list() == [1, 2, 5, 6]
    assert out["source"].to_list() == ["a", "a", "b", "b"]
    assert out["sources"].to_list()[1] == ["a", "b"]
    assert out["merged_rank"].to_list() == [1, 2, 3, 4]
    assert out["query_id"].to_list() == [7] * 4


def test_fill_when_a_channel_is_short() -> None:
    a = _result("a", [[1, 2, 3, 4]])
    b = _result("b", [[9, -1, -1, -1]])
    out = merge_channels([a, b], np.array([0]), MergeConfig(k=4, quotas={"a": 1, "b": 3}))
    # quota pass: a -> 1, b -> 9; fill from a's remaining by rank: 2, 3.
    assert sorted(out["item_idx"].to_list()) == [1, 2, 3, 9]
    assert out.height == 4


def test_priority_follows_quota_order() -> None:
    a = _result("a", [[1]])
    b = _result("b", [[1]])
    out = merge_channels([a, b], np.array([0]), MergeConfig(k=2, quotas={"b": 1, "a": 1}))
    assert out["source"].to_list() == ["b"]
    assert out["sources"].to_list() == [["b", "a"]]


def test_unknown_quota_channel_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown channels"):
        merge_channels([_result("a", [[1]])], np.array([0]), MergeConfig(quotas={"zz": 1}))


def test_candidates_to_matrix_round_trip() -> None:
    a = _result("a", [[1, 2], [3, -1]])
    out = merge_channels([a], np.array([10, 11]), MergeConfig(k=2, quotas={"a": 2}))
    assert candidates_to_matrix(out, np.array([10, 11]), 3).tolist() == [[1, 2, -1], [3, -1, -1]]


def _oracle_merge(
    results: list[ChannelResult], query_id: np.ndarray, config: MergeConfig
) -> pl.DataFrame:
    """The merge written as plain relational steps (the first implementation): the kernel
    must produce exactly this table."""
    names = [r.channel for r in results]
    order = [n for n in config.quotas if n in names] + [n for n in names if n not in config.quotas]
    by_name = {r.channel: r for r in results}
    parts = []
    for p, name in enumerate(order):
        res = by_name[name]
        b, k = res.item_idx.shape
        flat = res.item_idx.ravel()
        keep = flat >= 0
        parts.append(
            pl.DataFrame(
                {
                    "query_id": np.repeat(query_id, k)[keep],
                    "item_idx": flat[keep].astype(np.int32),
                    "source": np.full(int(keep.sum()), name),
                    "source_rank": np.tile(np.arange(1, k + 1, dtype=np.int32), b)[keep],
                    "recall_score": res.score.ravel()[keep].astype(np.float32),
                    "priority": np.full(int(keep.sum()), p, dtype=np.int32),
                }
            )
        )
    long = pl.concat(parts)
    sources = long.group_by("query_id", "item_idx").agg(
        pl.col("source").sort_by("priority").alias("sources")
    )
    taken = long.clear().select("query_id", "item_idx")
    chosen_parts = []
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
        chosen_parts.append(mine)
        taken = pl.concat([taken, mine.select(taken.columns)])
    chosen = pl.concat(chosen_parts) if chosen_parts else long.clear()
    rest = (
        long.join(chosen.select("query_id", "item_idx"), on=["query_id", "item_idx"], how="anti")
        .sort("query_id", "source_rank", "priority")
        .unique(["query_id", "item_idx"], keep="first", maintain_order=True)
    )
    merged = (
        pl.concat([chosen.with_columns(_pass=pl.lit(0)), rest.with_columns(_pass=pl.lit(1))])
        .sort("query_id", "_pass", "source_rank", "priority")
        .group_by("query_id", maintain_order=True)
        .head(config.k)
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("query_id").alias("merged_rank")
        )
    )
    return merged.join(sources, on=["query_id", "item_idx"], how="left").select(
        "query_id", "item_idx", "source", "source_rank", "recall_score", "sources", "merged_rank"
    )


@pytest.mark.parametrize("seed", range(8))
def test_kernel_matches_relational_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_queries, n_items = 7, 40
    results = []
    for name in ("a", "b", "c", "d"):
        width = int(rng.integers(1, 15))
        idx = np.stack([rng.choice(n_items, width, replace=False) for _ in range(n_queries)])
        idx = np.where(rng.random(idx.shape) < 0.2, -1, idx).astype(np.int32)
        idx = -np.sort(-idx, axis=1)  # padding at the end, as channels return it
        score = np.where(idx >= 0, rng.random(idx.shape), -np.inf).astype(np.float32)
        results.append(ChannelResult(name, idx, score))
    quotas = {n: int(rng.integers(0, 6)) for n in rng.permutation(["a", "b", "c", "d"])[:3]}
    config = MergeConfig(k=int(rng.integers(1, 30)), quotas=quotas)
    query_id = rng.permutation(100)[:n_queries]
    got = merge_channels(results, query_id, config)
    want = _oracle_merge(results, query_id, config)
    key = ["query_id", "merged_rank"]
    assert got.sort(key).to_dicts() == want.sort(key).to_dicts()


def test_rrf_merge_sums_weighted_reciprocal_ranks() -> None:
    """Two channels: b is 2nd in both (1/62 + 1/62) and beats a, 1st in one only (1/61)."""
    a = ChannelResult("x", np.array([[0, 1]], np.int32), np.array([[2.0, 1.0]], np.float32))
    b = ChannelResult("y", np.array([[2, 1]], np.int32), np.array([[2.0, 1.0]], np.float32))
    config = MergeConfig(k=3, method="rrf", rrf_k=60)
    out = merge_channels([a, b], np.array([7]), config)
    assert out["item_idx"].to_list() == [1, 0, 2]
    assert out["merged_rank"].to_list() == [1, 2, 3]
    assert out["sources"].to_list()[0] == ["x", "y"]
    # without the first channel's votes, the second channel's own order wins
    heavy = config.model_copy(update={"weights": {"x": 0.0}})
    assert merge_channels([a, b], np.array([7]), heavy)["item_idx"].to_list()[0] == 2


@pytest.mark.parametrize("method", ["quotas", "rrf"])
def test_columns_agree_with_the_channel_lists_for_a_batch(method: str) -> None:
    rng = np.random.default_rng(0)
    widths = {"a_channel_with_a_long_name": 6, "b": 4, "c": 6}
    results = []
    for name, width in widths.items():
        rows = [rng.choice(12, width, replace=False).tolist() for _ in range(5)]
        rows[2][-1] = -1
        results.append(_result(name, rows))
    query_id = np.array([10, 11, 12, 13, 14])
    config = MergeConfig(k=8, quotas={"b": 2, "c": 2}, method=method)
    out = merge_channels(results, query_id, config)
    assert out.schema == pl.Schema(
        {
            "query_id": pl.Int64,
            "item_idx": pl.Int32,
            "source": pl.String,
            "source_rank": pl.Int32,
            "recall_score": pl.Float32,
            "sources": pl.List(pl.String),
            "merged_rank": pl.Int32,
        }
    )
    by_name = {r.channel: r for r in results}
    for row in out.iter_rows(named=True):
        b = int(np.flatnonzero(query_id == row["query_id"])[0])
        hits = {n for n, r in by_name.items() if row["item_idx"] in r.item_idx[b].tolist()}
        assert set(row["sources"]) == hits and row["source"] in hits
        assert len(row["sources"]) == len(hits)
        source = by_name[row["source"]]
        assert source.item_idx[b, row["source_rank"] - 1] == row["item_idx"]
        assert source.score[b, row["source_rank"] - 1] == row["recall_score"]
    for _, part in out.group_by("query_id"):
        assert part["merged_rank"].to_list() == list(range(1, part.height + 1))
