"""Splits, and the proof that nothing from the test period reaches a fitted component."""

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.data.split import (
    LeaveLastOutConfig,
    RandomRatioConfig,
    TemporalSplitConfig,
    make_split,
)
from funnelrec.pipeline.recommender import Recommender
from funnelrec.recall.base import Queries

PLANTED = 10_000


def _with_planted_item(small_log: tuple[pl.DataFrame, pl.DataFrame]):
    inter, items = small_log
    t_max = int(inter["timestamp"].max())
    planted = pl.DataFrame(
        {
            "user_id": np.arange(30, dtype=np.int64),
            "item_id": np.full(30, PLANTED, dtype=np.int64),
            "timestamp": np.full(30, t_max, dtype=np.int64),
            "event": ["click"] * 30,
            "value": np.ones(30, dtype=np.float32),
        }
    )
    items = pl.concat(
        [
            items,
            pl.DataFrame(
                {"item_id": [PLANTED], "category": ["c0"], "created_at": [t_max - 10]},
                schema=items.schema,
            ),
        ]
    )
    return pl.concat([inter, planted]), items


def test_planted_test_period_item_is_unknown_to_every_component(small_log) -> None:
    inter, items = _with_planted_item(small_log)
    split = make_split(inter, items, None, TemporalSplitConfig(test_fraction=0.1))
    assert PLANTED in split.test["item_id"].to_list()
    train = Dataset.build(split.train_interactions, split.train_items, as_of=split.as_of)
    assert train.item_vocab.encode(pl.Series([PLANTED])).tolist() == [-1]
    assert int(train.interactions["timestamp"].max()) < split.as_of
    cfg = load_config()
    recommender = Recommender.fit(train, cfg, rng=np.random.default_rng(0))
    # Every channel's fitted state is sized by the training catalogue only ...
    for channel in recommender.channels.values():
        for array in channel.state().values():
            assert PLANTED not in np.asarray(array).shape
    # ... and no channel can return the planted item for anybody.
    users = train.user_vocab.ids
    queries = Queries.from_history(
        np.arange(users.len()),
        np.arange(users.len(), dtype=np.int32),
        np.full(users.len(), split.as_of),
        train.positives,
    )
    results, _ = recommender.retrieve(queries)
    for result in results.values():
        assert result.item_idx.max() < train.n_items


def test_temporal_split_is_by_time(small_log) -> None:
    inter, items = small_log
    split = make_split(inter, items, None, TemporalSplitConfig(test_fraction=0.25))
    assert split.train_interactions["timestamp"].max() < split.as_of
    assert split.test["timestamp"].min() >= split.as_of
    assert split.train_interactions.height + split.test.height == inter.height


def test_leave_last_out_targets_last_new_item() -> None:
    inter = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "item_id": [10, 11, 12, 10, 10],
            "timestamp": [1, 2, 3, 4, 5],
            "event": ["click"] * 5,
            "value": [1.0] * 5,
        }
    )
    split = make_split(inter, None, None, LeaveLastOutConfig())
    # user 1: last *new* item is 12 (10 at t=4 is a repeat, after the target -> dropped).
    assert split.test.select("user_id", "item_id").rows() == [(1, 12)]
    assert split.train_interactions["item_id"].to_list() == [10, 11, 10]
    assert split.info["dropped_rows_after_target"] == 1


def test_random_ratio_is_per_user_and_seeded(small_log) -> None:
    inter, _ = small_log
    a = make_split(inter, None, None, RandomRatioConfig(seed=1))
    b = make_split(inter, None, None, RandomRatioConfig(seed=1))
    assert a.test.equals(b.test)
    both = a.train_interactions.join(a.test, on=["user_id", "item_id"], how="inner")
    assert both.height == 0


def test_random_ratio_rejects_bad_ratios(small_log) -> None:
    from funnelrec.errors import DataError

    with pytest.raises(DataError, match="sum to 1"):
        make_split(small_log[0], None, None, RandomRatioConfig(ratios=(0.5, 0.1, 0.1)))
