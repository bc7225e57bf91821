"""Negative samplers: logQ terms, mixed (uniform) negatives, same-category and mined hard ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelrec.index import ExactIndexConfig, HNSWIndexConfig, build_index
from funnelrec.recall.two_tower.config import HardNegativeConfig
from funnelrec.recall.two_tower.sampling import (
    category_negatives,
    item_log_q,
    mine_hard_negatives,
    mining_window,
    n_hard_per_example,
    sample_windows,
    split_evenly,
    uniform_negatives,
)


def test_log_q_is_expected_count_under_mixed_sampling() -> None:
    counts = np.array([6, 2, 0, 0])
    # B * p_j + U / N with B = 8, U = 4, N = 4.
    expected = np.log([8 * 6 / 8 + 1, 8 * 2 / 8 + 1, 1, 1])
    assert np.allclose(item_log_q(counts, 8, 4), expected)
    no_uniform = item_log_q(counts, 8, 0)
    assert np.allclose(no_uniform[:2], np.log([6.0, 2.0]))
    assert np.isfinite(no_uniform).all()  # never-sampled items get a floor, not -inf


def test_uniform_negatives_cover_the_corpus_uniformly() -> None:
    rng = np.random.default_rng(0)
    draws = uniform_negatives(10, 20_000, rng)
    assert draws.dtype == np.int64 and draws.min() >= 0 and draws.max() <= 9
    freq = np.bincount(draws, minlength=10) / draws.shape[0]
    assert np.allclose(freq, 0.1, atol=0.01)
    again = uniform_negatives(10, 5, np.random.default_rng(1))
    assert np.array_equal(again, uniform_negatives(10, 5, np.random.default_rng(1)))


def test_category_negatives_share_the_category_and_skip_the_positive() -> None:
    cats = np.array([1, 1, 1, 2, 2, 0, 3])  # item 5 unknown category, item 6 alone in its own
    rng = np.random.default_rng(0)
    pos = np.array([0, 3, 5, 6, 2])
    out = category_negatives(pos, cats, 200, rng)
    assert out.shape == (5, 200)
    assert set(out[0].tolist()) == {1, 2}
    assert set(out[1].tolist()) == {4}
    assert (out[2] == -1).all() and (out[3] == -1).all()
    assert set(out[4].tolist()) == {0, 1}
    # Uniform over the other members of the category.
    assert abs((out[0] == 1).mean() - 0.5) < 0.15


def test_hard_negative_count_follows_the_easy_hard_ratio() -> None:
    assert n_hard_per_example(HardNegativeConfig(), 1024, 0) == 10
    assert n_hard_per_example(HardNegativeConfig(easy_hard_ratio=50), 1024, 1024) == 41
    assert n_hard_per_example(HardNegativeConfig(), 8, 0) == 1
    assert split_evenly(5, 2) == [3, 2] and split_evenly(1, 2) == [1, 0]


def test_curriculum_moves_from_easier_to_harder_ranks() -> None:
    assert mining_window(HardNegativeConfig(), 7) == (101, 500)
    cfg = HardNegativeConfig(rank_window=(11, 20), curriculum_start=51, curriculum_rounds=4)
    windows = [mining_window(cfg, r) for r in range(6)]
    assert windows[0] == (51, 60) and windows[4] == windows[5] == (11, 20)
    starts = [w[0] for w in windows]
    assert starts == sorted(starts, reverse=True)
    with pytest.raises(ValueError):
        HardNegativeConfig(rank_window=(10, 5))


def _ranked_corpus(n: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Unit item vectors whose inner product with the query decreases with the item id."""
    angles = np.linspace(0.0, math.pi / 2, n)
    items = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    return items, np.array([[1.0, 0.0]], dtype=np.float32)


@pytest.mark.parametrize("config", [ExactIndexConfig(), HNSWIndexConfig()])
def test_mining_returns_the_rank_window_without_positives(config) -> None:
    items, query = _ranked_corpus()
    index = build_index(config, "ip")
    index.build(items, np.arange(items.shape[0]))
    positives = np.array([0, 3, 12, 14, 40])
    ptr = np.array([0, positives.shape[0]])
    out = mine_hard_negatives(query, index, ptr, positives, (6, 10))
    # Ranking without positives: 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, ...
    assert out.tolist() == [[7, 8, 9, 10, 11]]
    assert not set(out.ravel().tolist()) & set(positives.tolist())


def test_mining_pads_when_the_corpus_is_too_small_and_handles_many_users() -> None:
    items, query = _ranked_corpus(12)
    index = build_index(ExactIndexConfig(), "ip")
    index.build(items, np.arange(12))
    queries = np.concatenate([query, query])
    ptr = np.array([0, 0, 2])
    out = mine_hard_negatives(queries, index, ptr, np.array([0, 1]), (9, 12))
    assert out.tolist() == [[8, 9, 10, 11], [10, 11, -1, -1]]


def test_sample_windows_draws_only_from_each_users_window() -> None:
    windows = np.array([[5, 6, -1], [-1, -1, -1], [7, 8, 9]], dtype=np.int32)
    rng = np.random.default_rng(0)
    out = sample_windows(windows, np.array([0, 1, 2, 0]), 50, rng)
    assert set(out[0].tolist()) == {5, 6} and set(out[3].tolist()) == {5, 6}
    assert (out[1] == -1).all()
    assert set(out[2].tolist()) == {7, 8, 9}
