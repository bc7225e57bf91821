"""The ItemCF pair kernel's building blocks: selection and sorting, and the whole kernel."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.itemcf.kernel import _keep_largest, _sort_descending
from funnelrec.recall.itemcf.reference import textbook_itemcf

DAY = 86_400


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
