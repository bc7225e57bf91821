"""Helpers for the ItemCF tests: tiny Datasets and an order-up-to-ties neighbour comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl
import pytest
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset

DAY = 86_400

MakeDataset = Callable[..., Dataset]


def build_dataset(
    rows: Sequence[tuple[int, int, int]], created: dict[int, int] | None = None
) -> Dataset:
    """A Dataset from ``(user_id, item_id, timestamp)`` rows (all positives).

    With ``created`` (item_id -> created_at) an items table is attached. User/item ids are
    non-negative ints, so dense indices follow id order among the ids present.
    """
    users, items, times = zip(*rows, strict=True) if rows else ((), (), ())
    inter = pl.DataFrame(
        {
            "user_id": pl.Series(users, dtype=pl.Int64),
            "item_id": pl.Series(items, dtype=pl.Int64),
            "timestamp": pl.Series(times, dtype=pl.Int64),
            "event": pl.Series(["click"] * len(rows), dtype=pl.String),
            "value": pl.Series([1.0] * len(rows), dtype=pl.Float32),
        }
    )
    item_table = None
    if created is not None:
        item_table = pl.DataFrame(
            {
                "item_id": pl.Series(list(created), dtype=pl.Int64),
                "created_at": pl.Series(list(created.values()), dtype=pl.Int64),
            }
        )
    return Dataset.build(inter, item_table)


def random_rows(
    rng: np.random.Generator, n: int, n_users: int, n_items: int, span_s: int = 10 * DAY
) -> list[tuple[int, int, int]]:
    """``n`` random ``(user, item, timestamp)`` rows (duplicates and timestamp ties included)."""
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    t = rng.integers(0, span_s, n) // 600 * 600
    return list(zip(u.tolist(), i.tolist(), t.tolist(), strict=True))


def assert_same_neighbors(
    idx: NDArray[np.int32],
    sim: NDArray[np.floating],
    ref_idx: NDArray[np.int32],
    ref_sim: NDArray[np.floating],
    rtol: float = 1e-6,
) -> None:
    """Same neighbour table up to float rounding: equal values, equal sets except at a tie.

    Per row: the values, best first, agree within ``rtol``; every neighbour kept by both has the
    same similarity; a neighbour kept by only one side must tie (within ``rtol``) with the
    row's cut-off value.
    """
    assert idx.shape == ref_idx.shape
    np.testing.assert_array_equal(idx >= 0, ref_idx >= 0)
    np.testing.assert_allclose(sim, ref_sim, rtol=rtol, atol=0)
    for r in range(idx.shape[0]):
        mine = {int(j): float(v) for j, v in zip(idx[r], sim[r], strict=True) if j >= 0}
        ref = {int(j): float(v) for j, v in zip(ref_idx[r], ref_sim[r], strict=True) if j >= 0}
        for j in mine.keys() & ref.keys():
            assert mine[j] == pytest.approx(ref[j], rel=rtol), (r, j)
        if mine.keys() != ref.keys():
            cut = min(ref.values())
            for j in mine.keys() ^ ref.keys():
                v = mine.get(j, ref.get(j))
                assert v == pytest.approx(cut, rel=rtol), (r, j, v, cut)


@pytest.fixture(scope="session")
def make_dataset() -> MakeDataset:
    """``make_dataset(rows, created=None) -> Dataset``, see :func:`build_dataset`."""
    return build_dataset


@pytest.fixture(scope="session")
def make_rows() -> Callable[..., list[tuple[int, int, int]]]:
    """``make_rows(rng, n, n_users, n_items, span_s=10 days)``, see :func:`random_rows`."""
    return random_rows


@pytest.fixture(scope="session")
def same_neighbors() -> Callable[..., None]:
    """The :func:`assert_same_neighbors` check."""
    return assert_same_neighbors
