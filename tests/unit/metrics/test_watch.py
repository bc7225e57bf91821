"""Watch-time-weighted NDCG and completion rate at K (metrics/watch.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelrec.metrics.watch import completion_rate_at_k, watch_time_ndcg


def test_watch_time_ndcg_rewards_long_plays_first() -> None:
    play = np.array([3.0, 60.0, 0.0])
    group = np.zeros(3, dtype=np.int64)
    assert watch_time_ndcg(play, np.array([0.1, 0.9, 0.0]), group, k=2) == pytest.approx(1.0)
    assert watch_time_ndcg(play, np.array([0.9, 0.1, 0.0]), group, k=2) < 0.7


def test_watch_time_ndcg_skips_queries_without_plays() -> None:
    out = watch_time_ndcg(np.array([0.0, 0.0, 5.0]), np.array([1.0, 0.0, 1.0]), [0, 0, 1], k=1)
    assert out == 1.0


def test_completion_rate_counts_the_top_k_share() -> None:
    done = np.array([1, 0, 1, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.1, 0.5, 0.4, 0.3])
    group = np.array([0, 0, 0, 1, 1, 1])
    # query 0: top 2 = {1, 0} -> 0.5; query 1 has no completion: left out
    assert completion_rate_at_k(done, score, group, k=2) == 0.5
    # a short query is judged on its own length
    assert completion_rate_at_k([1], [0.3], [4], k=10) == 1.0


def test_completion_rate_edges() -> None:
    assert math.isnan(completion_rate_at_k([0, 0], [1.0, 2.0], [0, 0], k=1))
    with pytest.raises(ValueError, match="k must be"):
        completion_rate_at_k([1], [1.0], [0], k=0)
