"""The shared "last N distinct history items" rule: hand cases and a loop reference."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.recall.base import Queries
from funnelrec.recall.history import recent_items


def _queries(ptr: list[int], items: list[int], users: list[int] | None = None) -> Queries:
    b = len(ptr) - 1
    return Queries(
        np.arange(b, dtype=np.int64),
        np.asarray(users if users is not None else range(b), dtype=np.int32),
        np.full(b, 99, dtype=np.int64),
        np.asarray(ptr, dtype=np.int64),
        np.asarray(items, dtype=np.int32),
        np.arange(len(items), dtype=np.int64),
    )


def _reference(
    q: Queries, history_len: int, usable: np.ndarray, entries: np.ndarray | None
) -> list[tuple[int, int, int, int]]:
    """The rule as a plain loop: newest first, first sight of an item wins, stop at N."""
    out = []
    for row in range(len(q)):
        seen: set[int] = set()
        for pos in range(int(q.history_ptr[row + 1]) - 1, int(q.history_ptr[row]) - 1, -1):
            item = int(q.history_item[pos])
            ok = 0 <= item < usable.shape[0] and usable[item]
            if not ok or (entries is not None and not entries[pos]) or item in seen:
                continue
            if len(seen) == history_len:
                break
            out.append((row, item, pos, len(seen)))
            seen.add(item)
    return out


def test_dedupes_skips_unusable_and_truncates() -> None:
    q = _queries([0, 4, 5], [3, 1, 3, 2, 7])
    usable = np.ones(8, dtype=bool)
    usable[2] = False
    recent = recent_items(q, 2, usable)
    assert recent.row.tolist() == [0, 0, 1]
    assert recent.item.tolist() == [3, 1, 7]
    assert recent.rank.tolist() == [0, 1, 0]
    assert recent.pos.tolist() == [2, 1, 4]  # item 3's last occurrence, not its first


def test_entries_mask_and_out_of_range_ids_are_skipped() -> None:
    q = _queries([0, 2, 4], [5, -1, 0, 9])
    entries = np.array([True, True, False, True])
    recent = recent_items(q, 5, np.ones(6, dtype=bool), entries)
    assert recent.row.tolist() == [0] and recent.item.tolist() == [5]


@pytest.mark.parametrize("history_len", [1, 3, 50])
@pytest.mark.parametrize("with_entries", [False, True])
def test_matches_the_loop_reference(history_len: int, with_entries: bool) -> None:
    rng = np.random.default_rng(history_len)
    lengths = rng.integers(0, 12, size=40)
    ptr = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    items = rng.integers(-1, 15, size=int(ptr[-1])).tolist()
    q = _queries(ptr, items)
    usable = rng.random(14) < 0.8
    entries = rng.random(len(items)) < 0.7 if with_entries else None
    recent = recent_items(q, history_len, usable, entries)
    got = list(
        zip(
            recent.row.tolist(),
            recent.item.tolist(),
            recent.pos.tolist(),
            recent.rank.tolist(),
            strict=True,
        )
    )
    assert got == _reference(q, history_len, usable, entries)


@pytest.mark.parametrize("b", [1, 3])
@pytest.mark.parametrize("history_len", [2, 10**9])
def test_long_histories_of_few_items_match_the_loop_reference(b: int, history_len: int) -> None:
    """Hundreds of events over a handful of items: every item at its newest entry once."""
    rng = np.random.default_rng(b)
    lengths = rng.integers(200, 400, size=b)
    ptr = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    items = rng.integers(0, 9, size=int(ptr[-1])).tolist()
    q = _queries(ptr, items)
    usable = np.ones(8, dtype=bool)  # item 8 is past the catalogue
    recent = recent_items(q, history_len, usable)
    got = list(zip(recent.row, recent.item, recent.pos, recent.rank, strict=True))
    assert [tuple(int(v) for v in t) for t in got] == _reference(q, history_len, usable, None)
