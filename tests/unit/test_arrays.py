"""unique_sorted is np.unique for every dtype, through a sort for integers; grouped_lexsort is
np.lexsort with the group as the primary key, block by block."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.arrays import grouped_lexsort, positions_of, unique_sorted


@pytest.mark.parametrize(
    "values",
    [
        np.array([], dtype=np.int64),
        np.array([7], dtype=np.int32),
        np.array([3, 3, 3], dtype=np.uint8),
        np.array([[4, 1], [1, -2]], dtype=np.int64),  # flattened, as np.unique does
        np.array([True, False, True]),
        np.array([0.5, np.nan, 0.5, np.nan]),  # NaNs folded into one, as np.unique does
        np.array(["b", "a", "b"]),
    ],
)
def test_unique_sorted_equals_np_unique(values: np.ndarray) -> None:
    expected = np.unique(values)
    got = unique_sorted(values)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_unique_sorted_on_random_pair_codes() -> None:
    rng = np.random.default_rng(0)
    codes = (rng.integers(0, 50, 10_000).astype(np.int64) << 32) | rng.integers(0, 90, 10_000)
    np.testing.assert_array_equal(unique_sorted(codes), np.unique(codes))


@pytest.mark.parametrize("block_rows", [1, 7, 64, 10_000])
@pytest.mark.parametrize("contiguous", [True, False])
def test_grouped_lexsort_equals_np_lexsort(block_rows: int, contiguous: bool) -> None:
    rng = np.random.default_rng(block_rows)
    n = 2_000
    # Groups of very unequal sizes (one larger than most blocks), heavy ties in both keys.
    group = np.concatenate([np.zeros(300, np.int64), rng.integers(1, 120, n - 300)])
    group = np.sort(group) if contiguous else rng.permutation(group)
    first = rng.integers(0, 3, n).astype(np.float64)
    second = rng.integers(0, 5, n)
    expected = np.lexsort((first, second, group))
    got = grouped_lexsort((first, second), group, block_rows=block_rows)
    np.testing.assert_array_equal(got, expected)


def test_grouped_lexsort_of_no_rows_and_no_keys() -> None:
    assert grouped_lexsort((), np.array([], dtype=np.int64)).shape == (0,)
    np.testing.assert_array_equal(
        grouped_lexsort((), np.array([2, 1, 2, 0]), block_rows=1), [3, 1, 0, 2]
    )


def test_positions_of_finds_present_keys_and_flags_absent_ones() -> None:
    keys = np.array([40, 10, 30, 20])
    at, found = positions_of(keys, np.array([20, 25, 40, 5, 50, 10]))
    assert found.tolist() == [True, False, True, False, False, True]
    assert keys[at[found]].tolist() == [20, 40, 10]
    empty_at, empty_found = positions_of(np.array([], dtype=np.int64), np.array([1, 2]))
    assert empty_at.shape == (2,) and not empty_found.any()
