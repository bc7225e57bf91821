"""The ItemCF kernel's building blocks: sequences, step decay, selection and sorting."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.kernel import (
    _keep_largest,
    _sort_descending,
    build_sequences,
    step_decay,
)
from funnelrec.recall.itemcf.reference import textbook_itemcf

DAY = 86_400


def positives(rows):
    u, i, t = zip(*rows, strict=True)
    return pl.DataFrame(
        {"user_idx": list(u), "item_idx": list(i), "timestamp": list(t)},
        schema={"user_idx": pl.Int32, "item_idx": pl.Int32, "timestamp": pl.Int64},
    )


def test_build_sequences_dedupes_to_last_and_sorts():
    # user 0: item 2 at 5 and 9 (keep 9), item 1 at 7, item 0 at 7 (tie: item order)
    # user 1: nothing; user 2: rows arrive out of time order; invalid indices dropped
    rows = [(0, 2, 5), (2, 1, 30), (0, 1, 7), (0, 0, 7), (0, 2, 9), (2, 0, 10), (-1, 0, 1)]
    rows += [(2, 9, 3)]
    seq = build_sequences(positives(rows), n_users=3, n_items=3)
    assert seq.user_ptr.tolist() == [0, 3, 3, 5]
    assert seq.item.tolist() == [0, 1, 2, 0, 1]
    assert seq.time.tolist() == [7, 7, 9, 10, 30]
    assert seq.item_ptr.tolist() == [0, 2, 4, 5]
    assert seq.occ_user.tolist() == [0, 2, 0, 2, 0]
    assert seq.item[seq.occ_pos].tolist() == [0, 0, 1, 1, 2]
    assert seq.user_len.tolist() == [3, 0, 2]
    assert seq.item_users.tolist() == [2, 2, 1]


def test_step_decay():
    seq = build_sequences(positives([(0, 0, 0), (0, 1, DAY), (1, 2, 5 * DAY)]), 2, 3)
    np.testing.assert_allclose(step_decay(seq, float(DAY), 0.5)[1], 0.25)
    np.testing.assert_allclose(step_decay(seq, None, 0.5), [0.5, 0.5, 0.5])


@pytest.mark.parametrize("n", [0, 1, 2, 24, 25, 60, 128, 129, 300])
@pytest.mark.parametrize("clustered", [False, True])
def test_sort_descending(n, clustered):
    rng = np.random.default_rng(n)
    if clustered:  # equal high bits: everything lands in one bucket
        keys = (np.uint64(7) << np.uint64(40)) + rng.permutation(n).astype(np.uint64)
    else:
        keys = rng.choice(2**62, size=n, replace=False).astype(np.uint64)
    work = keys.copy()
    _sort_descending(work, n, np.empty(128, np.uint64), np.empty(64, np.int64))
    np.testing.assert_array_equal(work, np.sort(keys)[::-1])


@pytest.mark.parametrize(("n", "k"), [(101, 100), (500, 100), (1000, 1), (300, 299)])
def test_keep_largest(n, k):
    keys = np.random.default_rng(n).choice(2**62, size=n, replace=False).astype(np.uint64)
    work = keys.copy()
    _keep_largest(work, n, k)
    assert set(work[:k].tolist()) == set(np.sort(keys)[-k:].tolist())


def test_long_rows_match_textbook(make_dataset, same_neighbors):
    """Rows of > 128 neighbours (heapsort path) and > neighbors candidates (selection)."""
    rng = np.random.default_rng(5)
    rows = [
        (u, int(i), int(t))
        for u in range(40)
        for i, t in zip(
            rng.choice(250, size=50, replace=False), rng.integers(0, 5 * DAY, 50), strict=True
        )
    ]
    data = make_dataset(rows)
    cfg = ItemCFConfig(neighbors=150, window=None)
    model = ItemCF(cfg).fit(data, rng=rng)
    assert (model.neighbor_idx >= 0).sum(axis=1).max() == 150
    ref_idx, ref_sim = textbook_itemcf(data, cfg)
    same_neighbors(model.neighbor_idx, model.neighbor_sim, ref_idx, ref_sim)
