"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the folder is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (public datasets are not shipped)")
    return SHARED_DATA


def make_log(
    n_users: int = 40, n_items: int = 60, n_rows: int = 800, seed: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A small random canonical log and its items table (categories c0..c4, created_at)."""
    rng = np.random.default_rng(seed)
    items = pl.DataFrame(
        {
            "item_id": np.arange(n_items, dtype=np.int64),
            "category": [f"c{i % 5}" for i in range(n_items)],
            "created_at": np.zeros(n_items, dtype=np.int64),
        }
    )
    interactions = pl.DataFrame(
        {
            "user_id": rng.integers(0, n_users, n_rows).astype(np.int64),
            "item_id": (rng.zipf(1.5, n_rows) % n_items).astype(np.int64),
            "timestamp": np.sort(rng.integers(1_000_000, 2_000_000, n_rows)).astype(np.int64),
            "event": ["click"] * n_rows,
            "value": np.ones(n_rows, dtype=np.float32),
        }
    )
    return interactions, items


@pytest.fixture
def small_log() -> tuple[pl.DataFrame, pl.DataFrame]:
    return make_log()
