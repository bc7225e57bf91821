"""ItemCF's input sequences: deduplication, ordering, the inverted index and step decays."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.recall.itemcf.sequences import build_sequences, step_decay

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
