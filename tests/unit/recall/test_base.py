import numpy as np
import polars as pl
import scipy.sparse as sp

from funnelrec.recall.base import Queries
from funnelrec.recall.topk import sparse_topk


def _positives() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_idx": np.array([0, 0, 1, 0], dtype=np.int32),
            "item_idx": np.array([5, 6, 7, 8], dtype=np.int32),
            "timestamp": [1, 2, 3, 9],
        }
    )


def test_history_respects_as_of_time_and_order() -> None:
    q = Queries.from_history(
        np.array([0, 1, 2]), np.array([0, 1, -1]), np.array([5, 5, 5]), _positives()
    )
    assert q.history_ptr.tolist() == [0, 2, 3, 3]
    assert q.history_item.tolist() == [5, 6, 7]  # item 8 is after the as-of time
    assert q.history_row().tolist() == [0, 0, 1]


def test_history_matches_a_per_query_scan_with_ties_and_repeats() -> None:
    """Each query gets its user's rows with time <= its time, by time then input order."""
    rng = np.random.default_rng(0)
    n = 400
    log = pl.DataFrame(
        {
            "user_idx": rng.integers(-1, 6, n).astype(np.int32),
            "item_idx": rng.integers(-1, 50, n).astype(np.int32),
            "timestamp": rng.integers(0, 20, n) * 10**9,  # ties, and times far above 2^31
        }
    )
    users = np.array([0, 3, 3, 5, -1, 7, 2])
    times = np.array([0, 5, 19, 10, 10, 10, 25]) * 10**9
    q = Queries.from_history(np.arange(7), users, times, log)
    rows = log.with_row_index("i").filter(pl.col("item_idx") >= 0)
    for r, (user, t) in enumerate(zip(users, times, strict=True)):
        mine = rows.filter((pl.col("user_idx") == user) & (pl.col("timestamp") <= t))
        mine = mine.sort("timestamp", "i")
        lo, hi = q.history_ptr[r], q.history_ptr[r + 1]
        assert q.history_item[lo:hi].tolist() == mine["item_idx"].to_list()
        assert q.history_time[lo:hi].tolist() == mine["timestamp"].to_list()
        # One query alone (a served request's path) gets the same rows.
        one = Queries.from_history(np.array([r]), users[r : r + 1], times[r : r + 1], log)
        assert one.history_ptr.tolist() == [0, hi - lo]
        for got, want in ((one.history_item, q.history_item), (one.history_time, q.history_time)):
            assert got.dtype == want.dtype and got.tolist() == want[lo:hi].tolist()


def test_take_reorders_rows() -> None:
    q = Queries.from_history(np.array([0, 1]), np.array([0, 1]), np.array([5, 5]), _positives())
    sub = q.take(np.array([1, 0]))
    assert sub.query_id.tolist() == [1, 0]
    assert sub.history_item.tolist() == [7, 5, 6]
    assert sub.history_ptr.tolist() == [0, 1, 3]


def test_sparse_topk_orders_excludes_and_pads() -> None:
    scores = sp.csr_matrix(np.array([[0.0, 3.0, 1.0, 2.0], [0.0, 0.0, 0.0, 0.5]]))
    idx, score = sparse_topk(scores, 3, np.array([0, 1, 1]), np.array([1], dtype=np.int32))
    assert idx.tolist() == [[3, 2, -1], [3, -1, -1]]
    assert score[0, 0] == 2.0 and np.isneginf(score[0, 2])


def test_sparse_topk_ties_by_index() -> None:
    idx, _ = sparse_topk(sp.csr_matrix(np.array([[1.0, 1.0, 1.0]])), 2)
    assert idx.tolist() == [[0, 1]]
