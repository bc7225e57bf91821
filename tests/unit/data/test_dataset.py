"""Dataset.build: the (timestamp, user_idx) order, and no second copy of the log when the
input is already in that order or when every row is positive."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset, _in_time_order


def _log(users: list[int], times: list[int], events: list[str] | None = None) -> pl.DataFrame:
    n = len(users)
    return pl.DataFrame(
        {
            "user_id": pl.Series(users, dtype=pl.Int64),
            "item_id": pl.Series(range(n), dtype=pl.Int64),
            "timestamp": pl.Series(times, dtype=pl.Int64),
            "event": pl.Series(events or ["click"] * n, dtype=pl.String),
            "value": pl.Series([1.0] * n, dtype=pl.Float32),
        }
    )


@pytest.mark.parametrize(
    ("users", "times", "ordered"),
    [
        ([1, 2, 3], [5, 6, 7], True),
        ([3, 1, 2], [5, 6, 7], True),  # users in any order across different times
        ([1, 1, 2], [5, 5, 5], True),  # ties broken by user, ascending
        ([2, 1], [5, 5], False),  # a tie with the users descending
        ([1, 2], [6, 5], False),
    ],
)
def test_build_orders_by_time_then_user_either_way(users, times, ordered):
    log = _log(users, times)
    data = Dataset.build(log)
    shuffled = Dataset.build(log.sample(fraction=1.0, shuffle=True, seed=3))
    raw = log.with_columns(pl.Series("user_idx", data.user_vocab.encode(log["user_id"])))
    assert _in_time_order(raw) is ordered
    for built in (data, shuffled):
        frame = built.interactions
        keys = list(zip(frame["timestamp"].to_list(), frame["user_idx"].to_list(), strict=True))
        assert keys == sorted(keys)
    assert data.interactions.equals(shuffled.interactions.sort("timestamp", "user_idx", "item_id"))


def test_an_ordered_log_is_not_copied():
    log = _log([1, 2, 2, 3], [1, 2, 2, 4])
    data = Dataset.build(log)
    # The same buffer: the Dataset shares the caller's columns instead of a sorted copy.
    built = data.interactions["timestamp"].to_numpy()
    assert np.shares_memory(built, log["timestamp"].to_numpy())


def test_positives_is_the_log_itself_when_every_row_is_positive():
    data = Dataset.build(_log([1, 2, 3], [1, 2, 3]))
    assert data.positives is data.interactions


def test_positives_filters_other_events():
    data = Dataset.build(_log([1, 2, 3], [1, 2, 3], ["click", "impression", "order"]))
    assert data.positives is not data.interactions
    assert data.positives["event"].to_list() == ["click", "order"]
