"""CSR-array helpers of the request path against scipy.sparse, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from funnelrec.recall.sparse import csr_dense_product, row_ptr, sorted_by_row


@pytest.mark.parametrize("b", [1, 3, 200])
def test_csr_dense_product_equals_scipy_bit_for_bit(b: int) -> None:
    rng = np.random.default_rng(b)
    a = sp.random(b, 40, density=0.3, format="csr", random_state=rng, dtype=np.float32)
    dense = rng.standard_normal((40, 16)).astype(np.float32)
    got = csr_dense_product(a.indptr, a.indices, a.data, dense)
    want = np.asarray(a @ dense)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_csr_dense_product_of_empty_rows_is_zero() -> None:
    out = csr_dense_product(
        np.zeros(3, np.int64), np.zeros(0, np.int64), np.zeros(0), np.ones((2, 4))
    )
    assert out.tolist() == [[0.0] * 4] * 2


def test_sorted_rows_and_offsets_build_scipy_canonical_csr() -> None:
    rows = np.array([2, 0, 2, 0, 1])
    cols = np.array([5, 3, 1, 0, 4])
    order = sorted_by_row(rows, cols)
    ptr = row_ptr(rows[order], 4)
    want = sp.csr_matrix((np.ones(5), (rows, cols)), shape=(4, 6))
    assert ptr.tolist() == want.indptr.tolist()
    assert cols[order].tolist() == want.indices.tolist()
