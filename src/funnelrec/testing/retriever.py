"""The retriever contract (see :mod:`funnelrec.testing`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import ChannelResult, Queries, Retriever

RetrieverFactory = Callable[[], Retriever]


def contract_queries(data: Dataset, n_warm: int = 20, n_cold: int = 3) -> Queries:
    """``n_warm`` users with history (as of ``data.as_of``) followed by ``n_cold`` users the
    data never saw (empty history; each picked the first two categories at onboarding)."""
    warm = data.user_vocab.encode(data.user_vocab.ids.head(n_warm))
    user_idx = np.concatenate([warm, np.full(n_cold, -1, dtype=np.int32)]).astype(np.int32)
    n = user_idx.shape[0]
    queries = Queries.from_history(
        np.arange(n, dtype=np.int64),
        user_idx,
        np.full(n, data.as_of, dtype=np.int64),
        data.positives,
    )
    n_tags = min(2, len(data.category_vocab))
    per_query = np.r_[np.zeros(n_warm, dtype=np.int64), np.full(n_cold, n_tags, dtype=np.int64)]
    tags_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_query, out=tags_ptr[1:])
    tags_idx = np.tile(np.arange(n_tags, dtype=np.int32), n_cold)
    return dataclasses.replace(queries, tags_ptr=tags_ptr, tags_idx=tags_idx)


def _check_shapes(result: ChannelResult, n: int, k: int, n_items: int) -> None:
    assert result.item_idx.dtype == np.int32, f"item_idx dtype {result.item_idx.dtype}"
    assert result.score.dtype == np.float32, f"score dtype {result.score.dtype}"
    assert result.item_idx.shape == result.score.shape, "item_idx and score shapes differ"
    assert result.item_idx.shape[0] == n, f"{result.item_idx.shape[0]} rows for {n} queries"
    assert result.item_idx.shape[1] <= max(k, 1), f"{result.item_idx.shape[1]} columns > k={k}"
    pad = result.item_idx < 0
    assert np.all(result.item_idx[pad] == -1), "padding must be -1"
    assert np.all(np.isneginf(result.score[pad])), "padding scores must be -inf"
    assert np.all(np.isfinite(result.score[~pad])), "non-padding scores must be finite"
    assert np.all(result.item_idx[~pad] < n_items), "an item index past the catalogue"
    with np.errstate(invalid="ignore"):  # -inf - -inf in the padding
        steps = np.diff(result.score, axis=1)
    assert np.all(steps[~pad[:, 1:]] <= 1e-6), "rows not sorted"
    for row in result.item_idx:
        items = row[row >= 0]
        assert np.unique(items).shape[0] == items.shape[0], "an item repeated in a row"


def _check_no_seen(result: ChannelResult, queries: Queries) -> None:
    for row in range(len(queries)):
        start, end = queries.history_ptr[row], queries.history_ptr[row + 1]
        seen = set(queries.history_item[start:end].tolist())
        returned = set(result.item_idx[row][result.item_idx[row] >= 0].tolist())
        assert not (seen & returned), f"query {row} got seen items {sorted(seen & returned)[:5]}"


def _assert_same(a: ChannelResult, b: ChannelResult, what: str) -> None:
    assert np.array_equal(a.item_idx, b.item_idx), f"{what}: different items"
    assert np.allclose(a.score, b.score, atol=1e-5, equal_nan=True), f"{what}: different scores"


def check_retriever(factory: RetrieverFactory, data: Dataset, *, seed: int = 0) -> None:
    """Run the retriever contract on a fresh retriever from ``factory`` fitted on ``data``.

    Raises:
        AssertionError: a clause of the contract is broken (the message names it).
    """
    retriever = factory().fit(data, rng=np.random.default_rng(seed))
    assert retriever is not None, "fit must return the fitted retriever (self)"
    queries = contract_queries(data)
    k = retriever.config.k
    result = retriever.retrieve(queries)
    _check_shapes(result, len(queries), k, data.n_items)
    if retriever.config.exclude_seen:
        _check_no_seen(result, queries)
    smaller = retriever.retrieve(queries, 5)
    assert smaller.item_idx.shape[1] <= 5, "retrieve(queries, k) must cap the width at k"
    warm = queries.history_len > 0
    if warm.any() and not retriever.supports_cold_users:
        assert (result.item_idx[warm] >= 0).any(), "nothing for any user with history"
    cold = ~warm
    if retriever.supports_cold_users and cold.any():
        assert (result.item_idx[cold] >= 0).any(), "supports_cold_users but cold rows are empty"
    again = factory().fit(data, rng=np.random.default_rng(seed)).retrieve(queries)
    _assert_same(result, again, "fit twice with the same seed")
    restored = type(retriever).from_state(retriever.config, retriever.state())
    _assert_same(result, restored.retrieve(queries), "save/load (state -> from_state)")
    empty = retriever.retrieve(queries.take(np.zeros(0, dtype=np.int64)))
    assert empty.item_idx.shape[0] == 0, "empty input must give zero rows"
