"""Reading the event log: flags under the positive rule, the rows a request reads, times."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.features.pit.log import (
    EventRules,
    LogArrays,
    event_flags,
    relative_times,
    relevant_events,
)

LOG = pl.DataFrame(
    {
        "user_idx": [0, 0, 1, 2, -1],
        "item_idx": [5, 6, 5, 7, 6],
        "timestamp": [10, 20, 30, 40, 50],
        "event": ["impression", "click", "order", "cart", "click"],
    }
)


def test_event_flags_follow_the_positive_rule() -> None:
    default = event_flags(LOG, None, "click")
    assert default["pos"].tolist() == [False, True, True, True, True]
    assert default["imp"].tolist() == [True, False, False, False, False]
    assert default["ctr"].tolist() == [False, True, False, False, True]
    orders = event_flags(LOG, ("order",), "click")
    assert orders["pos"].tolist() == [False, False, True, False, False]
    assert orders["ctr"].tolist() == default["ctr"].tolist()  # CTR is not the positive rule


def test_relevant_events_are_the_samples_users_and_items_rows() -> None:
    samples = pl.DataFrame({"user_idx": [0], "item_idx": [7], "timestamp": [100]})
    assert relevant_events(LOG, samples)["timestamp"].to_list() == [10, 20, 40]


def test_relative_times_and_their_range() -> None:
    samples = pl.DataFrame({"timestamp": [25, 60]})
    t0, s_t, l_t = relative_times(samples, LOG)
    assert (t0, s_t.tolist(), l_t.tolist()) == (10, [15, 50], [0, 10, 20, 30, 40])
    with pytest.raises(ValueError, match="2\\*\\*32"):
        relative_times(pl.DataFrame({"timestamp": [2**33]}), LOG)


def test_log_arrays_carry_the_flags_of_their_rules() -> None:
    """One read of the log: keys and times as int64, the flags of ``event_flags``, and the
    sequence's flag (the positive one itself unless the sequence has its own rule)."""
    rules = EventRules(None, "click", None)
    arrays = LogArrays.of(LOG, rules)
    assert arrays.user.dtype == arrays.item.dtype == arrays.timestamp.dtype == np.int64
    assert arrays.timestamp.tolist() == LOG["timestamp"].to_list()
    flags = event_flags(LOG, None, "click")
    for kind, flag in flags.items():
        np.testing.assert_array_equal(arrays.flags[kind], flag)
    assert arrays.flags["seq"] is arrays.flags["pos"]
    orders = LogArrays.of(LOG, EventRules(None, "click", ("order",)))
    assert orders.flags["seq"].tolist() == [False, False, True, False, False]
    assert orders.flags["pos"].tolist() == flags["pos"].tolist()


def test_log_arrays_take_and_append_follow_the_rows() -> None:
    rules = EventRules(("order",), "click", None)
    arrays = LogArrays.of(LOG, rules)
    rows = np.array([4, 0, 2])
    head, tail = LOG[rows[:2]], LOG[rows[2:]]
    joined = LogArrays.of(head, rules).append(LogArrays.of(tail, rules))
    for got in (arrays.take(rows), joined):
        expected = LogArrays.of(LOG[rows], rules)
        np.testing.assert_array_equal(got.user, expected.user)
        np.testing.assert_array_equal(got.item, expected.item)
        np.testing.assert_array_equal(got.timestamp, expected.timestamp)
        assert got.flags.keys() == expected.flags.keys()
        for kind, flag in expected.flags.items():
            np.testing.assert_array_equal(got.flags[kind], flag, err_msg=kind)
