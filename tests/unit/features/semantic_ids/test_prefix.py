"""Prefix keys and statistics: the longest supported prefix wins, own counts left out."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.features.semantic_ids import OwnTotals, PrefixStats, prefix_keys

# Items by code: a (0,0) x3 with popularity 3, 6, 9; b (0,1) with 0; c (1,0) with 2.
CODES = np.array([[0, 0], [0, 0], [0, 0], [0, 1], [1, 0]])
NUM = np.array([3.0, 6.0, 9.0, 0.0, 2.0])
SIZES = (2, 2)


def _stats() -> PrefixStats:
    return PrefixStats.fit(prefix_keys(CODES, SIZES), NUM, np.ones(5))


def test_prefix_keys_are_equal_exactly_when_prefixes_are() -> None:
    keys = prefix_keys(np.array([[1, 2, 3], [1, 2, 4], [1, 3, 3], [2, 2, 3]]), (3, 5, 7))
    assert keys[:, 0].tolist() == [1, 1, 1, 2]
    assert keys[0, 1] == keys[1, 1] != keys[2, 1]
    assert len(set(keys[:, 2].tolist())) == 4
    with pytest.raises(ValueError, match="levels"):
        prefix_keys(np.zeros((2, 2)), (3,))


def test_a_new_item_inherits_its_longest_supported_prefix() -> None:
    stats = _stats()
    new = prefix_keys(np.array([[0, 0], [0, 1], [1, 1]]), SIZES)
    rate, level = stats.inherit(new, min_support=2)
    # (0,0) has 3 items -> mean 6; (0,1) has 1 item -> back off to (0,): (3+6+9+0)/4;
    # (1,1) unseen and (1,) has 1 item -> global 20/5.
    assert rate.tolist() == [6.0, 4.5, 4.0]
    assert level.tolist() == [2, 1, 0]
    rate, level = stats.inherit(new, min_support=1)
    assert rate.tolist() == [6.0, 0.0, 2.0] and level.tolist() == [2, 2, 1]


def test_smoothing_pulls_towards_the_global_rate() -> None:
    rate, _ = _stats().inherit(prefix_keys(CODES[:1], SIZES), min_support=1, smoothing=1.0)
    assert rate[0] == pytest.approx((18 + 4.0) / (3 + 1))


def test_own_counts_are_left_out_of_a_fitted_items_prior() -> None:
    stats = _stats()
    keys = prefix_keys(CODES, SIZES)
    own = OwnTotals(NUM, np.ones(5), np.ones(5, dtype=bool))
    rate, level = stats.inherit(keys, min_support=2, own=own)
    # Item 0: the two other (0,0) items, (6+9)/2. Item 3: (0,) without it has 3 items.
    assert rate[0] == pytest.approx(7.5) and level[0] == 2
    assert rate[3] == pytest.approx(6.0) and level[3] == 1
    assert level[4] == 0  # (1,) holds only itself: the global rate


def test_state_round_trip_and_errors() -> None:
    stats = _stats()
    again = PrefixStats.from_arrays(stats.to_arrays())
    keys = prefix_keys(CODES, SIZES)
    assert np.array_equal(
        again.inherit(keys, min_support=2)[0], stats.inherit(keys, min_support=2)[0]
    )
    with pytest.raises(ValueError, match="levels"):
        stats.inherit(keys[:, :1], min_support=1)
    with pytest.raises(ValueError, match="differ"):
        PrefixStats.fit(keys, NUM[:2], np.ones(2))
