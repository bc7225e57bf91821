import numpy as np
import pytest

from funnelrec.rerank.base import _fill_scores


def _numpy_fill(score: np.ndarray, rank: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """The fill as whole-array NumPy steps (the compiled pass's reference)."""
    n = score.shape[0]
    ok = ~np.isnan(score)
    pos = np.arange(n)
    sizes = ends - starts
    group_start = np.repeat(starts, sizes)
    group_end = np.repeat(ends, sizes)
    above = np.maximum.accumulate(np.where(ok, pos, -1))
    below = np.minimum.accumulate(np.where(ok, pos, n)[::-1])[::-1]
    filled = np.where(
        above >= group_start,
        score[np.clip(above, 0, n - 1)],
        np.where(below < group_end, score[np.clip(below, 0, n - 1)], -rank.astype(np.float64)),
    )
    return np.where(ok, score, filled)


@pytest.mark.parametrize("seed", range(30))
def test_fill_scores_equals_the_numpy_fill(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 12, rng.integers(1, 8))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    n = int(ends[-1])
    score = rng.random(n)
    score[rng.random(n) < rng.random()] = np.nan
    rank = np.concatenate([np.arange(1, s + 1) for s in sizes]).astype(np.int32)
    expected = _numpy_fill(score, rank, starts, ends)
    np.testing.assert_array_equal(_fill_scores(score, rank, starts, ends), expected)


def test_fill_scores_examples() -> None:
    nan = np.nan
    score = np.array([nan, 0.5, nan, 0.2, nan, nan])
    starts, ends = np.array([0, 4]), np.array([4, 6])
    out = _fill_scores(score, np.array([1, 2, 3, 4, 1, 2]), starts, ends)
    assert out.tolist() == [0.5, 0.5, 0.5, 0.2, -1.0, -2.0]
