import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import Queries
from funnelrec.recall.popular import Popular, PopularConfig

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
