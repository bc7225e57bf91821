"""The NumPy recall evidence equals the plain scipy / per-channel formulation it replaced, on
batches with everything that can go wrong: padding, duplicate and unknown items, non-finite
scores, cold queries, candidates of no query."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.recall import evidence
from funnelrec.recall.base import ChannelResult, Queries, Retriever, RetrieverBase
from funnelrec.recall.evidence import PREFIX, RECENT, add_evidence
from funnelrec.recall.history import recent_items

N_ITEMS = 40


class _Vectors(RetrieverBase):
    def __init__(self, vectors: NDArray[np.float32]) -> None:
        self.vectors = vectors

    def similarity_vectors(self) -> NDArray[np.float32]:
        return self.vectors


class _Matrix(_Vectors):
    """ItemCF-like: a float32 similarity matrix (non-canonical when asked) and float32
    recency-decayed history weights of known users only, like the real channel's."""

    def __init__(self, sim: sp.csr_matrix) -> None:
        super().__init__(np.zeros((N_ITEMS, 2), dtype=np.float32))
        self.sim = sim

    def similarity_matrix(self) -> sp.csr_matrix:
        return self.sim

    def history_weights(self, queries: Queries) -> sp.csr_matrix:
        known = queries.user_idx[queries.history_row()] >= 0
        recent = recent_items(queries, 8, np.ones(N_ITEMS, dtype=bool), known)
        weight = np.power(0.9, recent.rank.astype(np.float64)).astype(np.float32)
        shape = (len(queries), N_ITEMS)
        return sp.csr_matrix((weight, (recent.row, recent.item)), shape=shape)


def _reference(
    candidates: pl.DataFrame,
    results: dict[str, ChannelResult],
    queries: Queries,
    channels: dict[str, Retriever],
) -> pl.DataFrame:
    """The previous implementation: a search per channel, scipy products per history."""
    row_of = np.full(int(queries.query_id.max()) + 1, -1, dtype=np.int64)
    row_of[queries.query_id] = np.arange(len(queries))
    rows = row_of[candidates["query_id"].to_numpy()]
    items = candidates["item_idx"].to_numpy().astype(np.int64)
    columns: dict[str, NDArray] = {}
    n_channels = np.zeros(items.shape[0], dtype=np.float32)
    for name, result in results.items():
        rank, score = np.zeros(items.shape[0]), np.zeros(items.shape[0])
        for i, (r, item) in enumerate(zip(rows, items, strict=True)):
            at = np.flatnonzero(result.item_idx[r] == item) if r >= 0 else np.zeros(0, int)
            if len(at):
                rank[i], score[i] = at[0] + 1, result.score[r, at[0]]
        score = np.nan_to_num(score, neginf=0.0, posinf=0.0)
        hit = rank > 0
        n_channels += hit
        columns[f"{PREFIX}{name}_hit"] = hit.astype(np.float32)
        columns[f"{PREFIX}{name}_logrank"] = np.log1p(rank).astype(np.float32)
        columns[f"{PREFIX}{name}_score"] = np.where(hit, score, 0.0).astype(np.float32)
    for name, channel in channels.items():
        if isinstance(channel, _Matrix):
            columns.update(_reference_matrix(name, channel, queries, rows, items))
        elif isinstance(channel, _Vectors):
            columns.update(_reference_vectors(name, channel.vectors, queries, rows, items))
    columns[f"{PREFIX}n_channels"] = n_channels
    merged = candidates["merged_rank"].to_numpy().astype(np.float64)
    columns[f"{PREFIX}merged_logrank"] = np.log1p(merged).astype(np.float32)
    return candidates.with_columns(
        [pl.Series(name, values, dtype=pl.Float32) for name, values in columns.items()]
    )


def _reference_matrix(
    name: str, channel: _Matrix, queries: Queries, rows: NDArray, items: NDArray
) -> dict[str, NDArray]:
    sim = channel.similarity_matrix()
    known = (items >= 0) & (items < N_ITEMS) & (rows >= 0)
    weighted = {}
    for suffix, last in (("last", 1), ("recent", RECENT)):
        recent = recent_items(queries, last, np.ones(N_ITEMS, dtype=bool))
        value = 1.0 / np.bincount(recent.row, minlength=len(queries))[recent.row]
        shape = (len(queries), N_ITEMS)
        weighted[suffix] = sp.csr_matrix((value, (recent.row, recent.item)), shape=shape)
    weighted["all"] = channel.history_weights(queries)
    out = {}
    for suffix, history in weighted.items():
        scores = (sp.csr_matrix(history) @ sim).tocsr()
        value = np.zeros(items.shape[0], dtype=np.float32)
        value[known] = np.asarray(scores[rows[known], items[known]]).ravel()
        out[f"{PREFIX}{name}_sim_{suffix}"] = value
    return out


def _reference_vectors(
    name: str, vectors: NDArray, queries: Queries, rows: NDArray, items: NDArray
) -> dict[str, NDArray]:
    def unit(x: NDArray) -> NDArray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    known = (items >= 0) & (items < vectors.shape[0]) & (rows >= 0)
    cand = np.zeros((items.shape[0], vectors.shape[1]), dtype=np.float32)
    cand[known] = unit(vectors[items[known]])
    out = {}
    for suffix, last in (("last", 1), ("recent", RECENT), ("profile", evidence.PROFILE)):
        recent = recent_items(queries, last, np.ones(vectors.shape[0], dtype=bool))
        sums = np.zeros((len(queries), vectors.shape[1]))
        np.add.at(sums, recent.row, unit(vectors[recent.item].astype(np.float64)))
        cos = np.einsum("nd,nd->n", cand, unit(sums)[np.maximum(rows, 0)])
        out[f"{PREFIX}{name}_cos_{suffix}"] = np.where(known, cos, 0.0).astype(np.float32)
    return out


def _batch(
    rng: np.random.Generator, n_queries: int
) -> tuple[pl.DataFrame, dict[str, ChannelResult], Queries]:
    """Histories with repeats (some empty, one of an unknown user), two channels of different
    widths with padding, a duplicate item and non-finite scores, and candidates that the
    channels did not all return (an unknown item and a query absent from the batch too)."""
    lens = rng.integers(0, 12, n_queries)
    lens[0] = 0
    ptr = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    query_id = np.arange(n_queries, dtype=np.int64) * 2 + 5  # gaps: ids with no query
    user = np.arange(n_queries, dtype=np.int32)
    user[1] = -1
    queries = Queries(
        query_id=query_id,
        user_idx=user,
        timestamp=np.full(n_queries, 10**6, dtype=np.int64),
        history_ptr=ptr,
        history_item=rng.integers(0, N_ITEMS, ptr[-1]).astype(np.int32),
        history_time=np.arange(ptr[-1], dtype=np.int64),
    )
    results = {}
    for name, k in (("a", 6), ("b", 9)):
        item = np.stack([rng.permutation(N_ITEMS)[:k] for _ in range(n_queries)]).astype(np.int32)
        score = np.sort(rng.normal(size=(n_queries, k)), axis=1)[:, ::-1].astype(np.float32)
        item[:, -2:] = -1
        score[:, -2:] = -np.inf
        results[name] = ChannelResult(name, item, score)
    results["a"].item_idx[2, 1] = results["a"].item_idx[2, 0]  # a duplicate: the first counts
    results["b"].score[3, 0] = np.nan
    results["b"].score[4, 0] = np.inf
    q = np.repeat(query_id, 10)
    items = rng.integers(0, N_ITEMS, q.shape[0])
    items[3] = N_ITEMS + 7  # an item none of the channels knows
    # Candidates on the duplicate and the non-finite scores (query i's rows are 10 i ...).
    items[20] = results["a"].item_idx[2, 0]
    items[30], items[40] = results["b"].item_idx[3, 0], results["b"].item_idx[4, 0]
    q[5] = query_id[-1] - 1  # a candidate of no query in the batch
    candidates = pl.DataFrame(
        {
            "query_id": q,
            "item_idx": items.astype(np.int32),
            "merged_rank": np.tile(np.arange(1, 11, dtype=np.int32), n_queries),
        }
    )
    return candidates, results, queries


def _channels(rng: np.random.Generator, *, canonical: bool) -> dict[str, Retriever]:
    dense = rng.random((N_ITEMS, N_ITEMS)) * (rng.random((N_ITEMS, N_ITEMS)) < 0.3)
    sim = sp.csr_matrix(dense.astype(np.float32))
    if not canonical:  # neighbours by descending similarity, as ItemCF stores them
        for r in range(N_ITEMS):
            lo, hi = sim.indptr[r], sim.indptr[r + 1]
            order = lo + np.argsort(-sim.data[lo:hi], kind="stable")
            sim.indices[lo:hi], sim.data[lo:hi] = sim.indices[order], sim.data[order]
        sim.has_sorted_indices = False
    vectors = rng.normal(size=(N_ITEMS - 3, 5)).astype(np.float32)  # the last items: none
    return {"itemcf": _Matrix(sim), "tower": _Vectors(vectors)}


@pytest.mark.parametrize("canonical", [True, False])
@pytest.mark.parametrize("n_queries", [9, 80])
def test_evidence_equals_the_scipy_formulation(canonical: bool, n_queries: int) -> None:
    """Same columns, order and dtypes; the same floats (the products are summed in scipy's
    order and dtype; the cosines to float32 rounding)."""
    rng = np.random.default_rng(3)
    candidates, results, queries = _batch(rng, n_queries)
    channels = _channels(rng, canonical=canonical)
    out = add_evidence(candidates, results, queries, channels)
    expected = _reference(candidates, results, queries, channels)
    assert out.columns == expected.columns and out.schema == expected.schema
    for name in expected.columns:
        got, want = out[name].to_numpy(), expected[name].to_numpy()
        if "_cos_" in name:  # a compiled float64 pass, summed in its own order: to float32 ulps
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, name)


def test_one_query_equals_its_rows_of_a_batch() -> None:
    """A served request (one query) gets exactly the values of its rows in a larger batch."""
    rng = np.random.default_rng(4)
    candidates, results, queries = _batch(rng, 6)
    channels = _channels(rng, canonical=False)
    batch = add_evidence(candidates, results, queries, channels)
    row = 4
    alone = candidates.filter(pl.col("query_id") == queries.query_id[row])
    single = {
        name: ChannelResult(name, r.item_idx[row : row + 1], r.score[row : row + 1])
        for name, r in results.items()
    }
    out = add_evidence(alone, single, queries.take(np.array([row])), channels)
    assert out.equals(batch.filter(pl.col("query_id") == queries.query_id[row]))


def test_existing_evidence_columns_are_replaced_in_place() -> None:
    """As ``with_columns`` does: a column already there keeps its place, new ones follow."""
    rng = np.random.default_rng(5)
    candidates, results, queries = _batch(rng, 6)
    stale = candidates.with_columns(pl.lit(-1.0).alias(f"{PREFIX}a_hit"), pl.lit(0).alias("x"))
    fresh = add_evidence(candidates, results, queries, {})
    out = add_evidence(stale, results, queries, {})
    assert out.columns == stale.columns + [c for c in fresh.columns if c not in stale.columns]
    assert out.select(fresh.columns).equals(fresh)
