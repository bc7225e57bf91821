"""Random query batches for the recall tests that compare a channel with a reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from funnelrec.recall.base import Queries

RandomQueries = Callable[..., Queries]


def random_queries(
    rng: np.random.Generator,
    b: int,
    n_items: int,
    n_users: int = 10,
    n_categories: int = 0,
    user_attr: np.ndarray | None = None,
    odd_items: bool = True,
) -> Queries:
    """``b`` queries with what a served batch may hold: empty and long histories, repeated
    items, padding (-1) and items past the catalogue, unknown users (-1), and onboarding tags
    (some repeated or unknown) when ``n_categories`` > 0.

    Args:
        rng: the randomness.
        b: batch size.
        n_items: the catalogue the histories draw from (a few ids beyond it are added).
        n_users: users drawn for ``user_idx`` (10% of queries get -1).
        n_categories: tags drawn from ``[-1, n_categories]`` (0 = no tags).
        user_attr: ``[b, A]`` attribute codes to attach, or None.
        odd_items: add padding and out-of-catalogue ids to the histories.
    """
    lens = rng.integers(0, 25, b)
    lens[rng.random(b) < 0.2] = 0
    ptr = np.zeros(b + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    h = int(ptr[-1])
    # A small pool per query makes repeats common; a few ids are padding or unknown.
    items = rng.integers(0, max(n_items, 1), h)
    items[rng.random(h) < 0.3] = items[0] if h else 0
    if odd_items:
        odd = rng.random(h)
        items[odd < 0.03] = -1
        items[odd > 0.97] = n_items + rng.integers(0, 5, int((odd > 0.97).sum()))
    users = rng.integers(0, n_users, b).astype(np.int32)
    users[rng.random(b) < 0.1] = -1
    tags_ptr = tags = None
    if n_categories:
        n_tags = rng.integers(0, 4, b)
        tags_ptr = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(n_tags, out=tags_ptr[1:])
        tags = rng.integers(-1, n_categories + 1, int(tags_ptr[-1])).astype(np.int32)
    return Queries(
        np.arange(b, dtype=np.int64),
        users,
        np.full(b, 10**9, dtype=np.int64) + rng.integers(0, 100, b),
        ptr,
        items.astype(np.int32),
        np.sort(rng.integers(0, 10**9, h)).astype(np.int64),
        user_attr,
        tags_ptr,
        tags,
    )


@pytest.fixture(scope="session")
def make_random_queries() -> RandomQueries:
    """``make_random_queries(rng, b, n_items, ...)``, see :func:`random_queries`."""
    return random_queries
