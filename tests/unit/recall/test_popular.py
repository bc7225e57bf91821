from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import Queries
from funnelrec.recall.popular import Popular, PopularConfig, category_top_items
from funnelrec.recall.topk import sparse_topk

DAY = 86400


def _data() -> Dataset:
    # item 0: 3 old users; item 1: 2 recent users; item 2 (cat b): 1 recent user.
    inter = pl.DataFrame(
        {
            "user_id": [1, 2, 3, 4, 5, 6],
            "item_id": [0, 0, 0, 1, 1, 2],
            "timestamp": [0, 0, 0, 30 * DAY, 30 * DAY, 30 * DAY],
            "event": ["click"] * 6,
            "value": [1.0] * 6,
        }
    )
    items = pl.DataFrame({"item_id": [0, 1, 2], "category": ["a", "a", "b"]})
    return Dataset.build(inter, items, as_of=30 * DAY + 1)


def _queries(data: Dataset, users: list[int]) -> Queries:
    idx = data.user_vocab.encode(pl.Series(users))
    return Queries.from_history(
        np.arange(len(users)), idx, np.full(len(users), data.as_of), data.positives
    )


def test_global_counts_users() -> None:
    data = _data()
    pop = Popular(PopularConfig(mode="global", k=3)).fit(data, rng=np.random.default_rng(0))
    result = pop.retrieve(_queries(data, [99]))
    assert result.item_idx[0].tolist() == [0, 1, 2]


def test_recent_prefers_recent_items() -> None:
    data = _data()
    pop = Popular(PopularConfig(mode="recent", half_life_s=DAY, k=3))
    result = pop.fit(data, rng=np.random.default_rng(0)).retrieve(_queries(data, [99]))
    assert result.item_idx[0, 0] == 1


def test_seen_items_excluded_and_unknown_user_served() -> None:
    data = _data()
    pop = Popular(PopularConfig(mode="global", k=3)).fit(data, rng=np.random.default_rng(0))
    result = pop.retrieve(_queries(data, [1, 12345]))
    assert 0 not in result.item_idx[0].tolist()
    assert result.item_idx[1].tolist() == [0, 1, 2]


def test_category_mode_follows_history() -> None:
    data = _data()
    pop = Popular(PopularConfig(mode="category", k=2)).fit(data, rng=np.random.default_rng(0))
    result = pop.retrieve(_queries(data, [6, 99]))  # user 6 saw item 2 (category b)
    assert result.item_idx[0].tolist() == [-1, -1]  # only b item is seen: nothing left
    assert result.item_idx[1].tolist() == [-1, -1]  # no history -> no category signal
    result = pop.retrieve(_queries(data, [4]))  # user 4 saw item 1 (category a)
    assert result.item_idx[0].tolist() == [0, -1]


def test_state_round_trip() -> None:
    data = _data()
    pop = Popular(PopularConfig(mode="recent")).fit(data, rng=np.random.default_rng(0))
    again = Popular.from_state(pop.config, pop.state())
    q = _queries(data, [1, 2, 99])
    np.testing.assert_array_equal(pop.retrieve(q).item_idx, again.retrieve(q).item_idx)


def _scipy_retrieve(pop: Popular, q: Queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The channel as it was written: a scipy score matrix per request (the reference)."""
    n_items, rows = pop.item_score.shape[0], len(q)
    if pop.config.mode != "category":
        order = np.argsort(-pop.item_score, kind="stable")
        fetch = max(pop.config.k, k) + int(q.history_len.max(initial=0))
        keep = order[pop.item_score[order] > 0][:fetch]
        indptr = np.arange(rows + 1, dtype=np.int64) * keep.shape[0]
        data = np.tile(pop.item_score[keep], rows)
        scores = sp.csr_matrix((data, np.tile(keep, rows), indptr), shape=(rows, n_items))
    else:
        n_cats = int(pop.item_category.max(initial=-1)) + 1
        hist_cat = pop.item_category[q.history_item]
        valid = hist_cat >= 0
        pref = sp.csr_matrix(
            (np.ones(int(valid.sum())), (q.history_row()[valid], hist_cat[valid])),
            shape=(rows, max(n_cats, 1)),
        )
        totals = np.asarray(pref.sum(axis=1)).ravel()
        pref = sp.diags(1.0 / np.maximum(totals, 1.0)) @ pref
        top = category_top_items(pop.item_category, pop.item_score, n_cats, pop.config.per_category)
        scores = (pref @ top).tocsr()
    if pop.config.exclude_seen:
        return sparse_topk(scores, k, q.history_ptr, q.history_item)
    return sparse_topk(scores, k)


@pytest.mark.parametrize("b", [1, 2, 300])
@pytest.mark.parametrize("mode", ["global", "recent", "category"])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_retrieve_equals_the_scipy_score_matrix(
    small_log: tuple[pl.DataFrame, pl.DataFrame],
    make_random_queries: Callable[..., Queries],
    b: int,
    mode: str,
    exclude_seen: bool,
) -> None:
    data = Dataset.build(*small_log)
    cfg = PopularConfig(mode=mode, k=15, per_category=6, exclude_seen=exclude_seen)
    pop = Popular(cfg).fit(data)
    rng = np.random.default_rng(b)
    # category mode indexes item categories by history item: histories stay in the catalogue
    q = make_random_queries(rng, b, data.n_items, odd_items=False)
    for k in (1, 15, 100):
        got = pop.retrieve(q, k)
        want_idx, want_score = _scipy_retrieve(pop, q, k)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        np.testing.assert_array_equal(got.score, want_score)


def test_rankings_follow_a_refit() -> None:
    """The per-model rankings are rebuilt when fit replaces the scores."""
    data = _data()
    pop = Popular(PopularConfig(mode="global", k=3)).fit(data)
    assert pop.retrieve(_queries(data, [99])).item_idx[0].tolist() == [0, 1, 2]
    pop.config = PopularConfig(mode="recent", half_life_s=DAY, k=3)
    pop.fit(data)
    assert pop.retrieve(_queries(data, [99])).item_idx[0, 0] == 1
