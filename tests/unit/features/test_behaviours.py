"""Ragged behaviour sequences gather the same [B, L] arrays as a per-sample scan."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.features.behaviours import DenseSequences, RaggedSequences


def _ragged(rng: np.random.Generator, length: int) -> RaggedSequences:
    """Three users' time-sorted behaviours and 40 samples at random times (ties included)."""
    counts = np.array([0, 7, 30])
    user = np.repeat(np.arange(3), counts)
    time = np.concatenate([np.sort(rng.integers(0, 50, c)) for c in counts])
    sample_user = rng.integers(0, 3, 40)
    sample_time = rng.integers(0, 60, 40)
    start = np.searchsorted(user, sample_user, side="left")
    end = np.array(
        [
            s + np.searchsorted(time[user == u], t)
            for s, u, t in zip(start, sample_user, sample_time, strict=True)
        ]
    )
    return RaggedSequences(
        item=rng.integers(1, 100, user.shape[0]),
        category=rng.integers(0, 5, user.shape[0]),
        time=time,
        end=end,
        count=np.minimum(end - start, length),
        sample_time=sample_time,
        length=length,
    )


def _scan(seq: RaggedSequences, row: int) -> tuple[list[int], list[int], list[float]]:
    """One sample's sequence, most recent first, by walking back from its end."""
    pos = [seq.end[row] - 1 - j for j in range(seq.count[row])]
    gaps = [float(np.float32(np.log1p(float(seq.sample_time[row] - seq.time[p])))) for p in pos]
    return [int(seq.item[p]) for p in pos], [int(seq.category[p]) for p in pos], gaps


@pytest.mark.parametrize("length", [0, 1, 5, 50])
def test_dense_rows_equal_a_per_sample_scan(length: int) -> None:
    seq = _ragged(np.random.default_rng(length), length)
    item, category, gap = seq.dense()
    assert item.shape == category.shape == gap.shape == (40, length)
    assert gap.dtype == np.float32 and item.dtype == np.int64
    for row in range(40):
        want_item, want_cat, want_gap = _scan(seq, row)
        n = len(want_item)
        assert item[row, :n].tolist() == want_item and category[row, :n].tolist() == want_cat
        assert gap[row, :n].tolist() == want_gap
        assert not item[row, n:].any() and not category[row, n:].any() and not gap[row, n:].any()


def test_take_and_row_subsets_agree_with_the_whole() -> None:
    seq = _ragged(np.random.default_rng(1), 6)
    rows = np.array([5, 5, 0, 39, 17])
    whole = seq.dense()
    for part in (seq.dense(rows), seq.take(rows).dense()):
        for got, want in zip(part, whole, strict=True):
            np.testing.assert_array_equal(got, want[rows])
    dense = DenseSequences(*whole)
    assert dense.length == 6 and len(dense) == 40
    for got, want in zip(dense.take(rows).dense(), seq.dense(rows), strict=True):
        np.testing.assert_array_equal(got, want)


def test_one_request_s_rows_equal_the_per_row_build() -> None:
    """Rows of one user at one time (a served request) take the one-row path: same arrays,
    and a subset whose rows differ still takes the general one."""
    seq = _ragged(np.random.default_rng(3), 12)
    same = np.full(6, int(np.argmax(seq.count)))
    for part in (seq.dense(same), seq.take(same).dense()):
        for got, row in zip(part, seq.dense(same[:1]), strict=True):
            assert got.shape == (6, 12) and got.flags.writeable
            np.testing.assert_array_equal(got, np.repeat(row, 6, axis=0))
    mixed = np.array([*same, 0])
    for got, want in zip(seq.dense(mixed), seq.dense(), strict=True):
        np.testing.assert_array_equal(got, want[mixed])


def test_no_behaviours_at_all_give_padding() -> None:
    empty = np.zeros(0, np.int64)
    seq = RaggedSequences(
        empty, empty, empty, np.zeros(3, np.int64), np.zeros(3, np.int64), np.ones(3, np.int64), 4
    )
    item, category, gap = seq.dense()
    assert item.shape == (3, 4) and not item.any() and not category.any() and not gap.any()


def test_shortened_keeps_the_most_recent_behaviours() -> None:
    seq = _ragged(np.random.default_rng(2), 8)
    for block in (seq, DenseSequences(*seq.dense())):
        short = block.shortened(3)
        assert short.length == 3
        for got, want in zip(short.dense(), block.dense(), strict=True):
            np.testing.assert_array_equal(got, want[:, :3])
        with pytest.raises(ValueError, match="within 0..8"):
            block.shortened(9)
