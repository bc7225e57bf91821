"""unique_sorted is np.unique for every dtype, through a sort for integers."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.arrays import unique_sorted


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
