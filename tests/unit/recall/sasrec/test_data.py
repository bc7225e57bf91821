"""SASRec inputs: sequences as served histories are read, every pair trained once, batches."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.recall.base import Queries
from funnelrec.recall.sasrec.data import (
    Sequences,
    assemble_batch,
    hold_out_last,
    query_sequences,
    training_windows,
    user_sequences,
)


def test_user_sequences_keep_each_item_at_its_latest_occurrence() -> None:
    inter = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2],
            "item_id": [10, 11, 10, 12, 11],
            "timestamp": [1, 2, 3, 4, 1],
        }
    )
    data = Dataset.from_frame(inter)
    seqs = user_sequences(data)
    item = data.item_vocab.decode(seqs.item.astype(np.int32)).to_list()
    user1 = data.user_vocab.encode(pl.Series([1]))[0]
    lo, hi = seqs.ptr[user1], seqs.ptr[user1 + 1]
    assert item[lo:hi] == [11, 10, 12]
    assert seqs.lengths.sum() == 4


def test_every_pair_is_in_exactly_one_window_and_the_newest_window_is_full() -> None:
    rng = np.random.default_rng(0)
    lengths = np.array([0, 1, 2, 5, 9, 13])
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    seqs = Sequences(ptr, rng.integers(0, 50, int(ptr[-1])))
    x, y = training_windows(seqs, 4, -1)
    pairs = {(int(a), int(b)) for a, b in zip(x[x >= 0], y[y >= 0], strict=True)}
    expected = set()
    for r in range(len(seqs)):
        s = seqs.item[ptr[r] : ptr[r + 1]]
        expected |= {(int(s[i]), int(s[i + 1])) for i in range(len(s) - 1)}
    assert pairs == expected
    assert int((y >= 0).sum()) == int(np.maximum(lengths - 1, 0).sum())
    assert np.array_equal(x >= 0, y >= 0)
    assert x.shape[0] == int(sum(-(-max(n - 1, 0) // 4) for n in lengths))


def test_hold_out_takes_the_last_item_of_users_with_three_or_more() -> None:
    ptr = np.array([0, 2, 5, 9])
    seqs = Sequences(ptr, np.arange(9))
    train, hist, target = hold_out_last(seqs, 5, np.random.default_rng(0))
    assert target.tolist() == [4, 8]  # the 2-item user keeps both
    assert train.item.tolist() == [0, 1, 2, 3, 5, 6, 7]
    assert hist.ptr.tolist() == [0, 2, 5] and hist.item.tolist() == [2, 3, 5, 6, 7]
    _, none_hist, none = hold_out_last(seqs, 0, np.random.default_rng(0))
    assert none.shape == (0,) and len(none_hist) == 0


def test_batches_drop_all_padding_columns_and_list_distinct_targets() -> None:
    pad = 9
    inputs = np.array([[pad, pad, 1, 2], [pad, 3, 4, 5]])
    targets = np.array([[pad, pad, 2, 6], [pad, 4, 5, 6]])
    batch = assemble_batch(inputs, targets, np.array([0, 7]), np.ones(9, dtype=np.int64), pad)
    assert batch["seq"].tolist() == [[pad, 1, 2], [3, 4, 5]]
    assert batch["positions"].tolist() == [1, 2, 3, 4, 5]
    assert batch["cand_item"].tolist() == [2, 4, 5, 6, 0, 7]  # distinct targets, uniform
    assert batch["cand_item"][batch["target"]].tolist() == [2, 6, 4, 5, 6]
    assert np.allclose(batch["cand_log_count"].exp().numpy(), [1, 1, 1, 2, 1, 1])
    assert batch["hit_row"].shape == (0,)


def test_query_sequences_skip_unknown_items_and_empty_histories() -> None:
    n_items, max_len = 10, 3
    history = np.array([4, -1, 5, 12, 6, 7, 15], dtype=np.int32)  # row 1 empty, row 2 unknown
    ptr = np.array([0, 5, 5, 6, 7])
    queries = Queries(
        np.arange(4),
        np.zeros(4, dtype=np.int32),
        np.zeros(4, dtype=np.int64),
        ptr,
        history,
        np.arange(7, dtype=np.int64),
    )
    rows, seq = query_sequences(queries, max_len, n_items)
    assert rows.tolist() == [0, 2]
    assert seq.tolist() == [[4, 5, 6], [n_items, n_items, 7]]
