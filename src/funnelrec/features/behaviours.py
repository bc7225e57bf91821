"""Behaviour sequences of ranking samples, materialised a batch at a time.

A sample's sequence is its user's last ``L`` behaviours before the sample time, most recent
first (``seq_item``, ``seq_category``, ``seq_gap`` of :mod:`funnelrec.features.spec`). Stored
densely that is ``[N, L]`` per array: 1 KB a sample at ``L = 50``, 200 KB at ``L = 10,000``,
although a user's samples share one history. :class:`RaggedSequences` keeps the log's
behaviours once, sorted by (user, time), and per sample only where its window ends, how long
it is and the sample time; :meth:`RaggedSequences.dense` gathers ``[B, L]`` for the rows of
one batch (training batches, a served request). :class:`DenseSequences` holds given
``[N, L]`` arrays (hand-built features, tests). Both give the same arrays for the same
sequences, so models see one contract.

Example:
    >>> seq = RaggedSequences(item=np.array([3, 4, 5]), category=np.array([1, 1, 2]),
    ...     time=np.array([10, 20, 30]), end=np.array([2, 3]), count=np.array([2, 2]),
    ...     sample_time=np.array([25, 40]), length=3)
    >>> item, category, gap = seq.dense()
    >>> item.tolist()
    [[4, 3, 0], [5, 4, 0]]
    >>> seq.take(np.array([1])).dense()[0].tolist()
    [[5, 4, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
from numpy.typing import NDArray

SequenceArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]
"""``([B, L] item ids, [B, L] category ids, [B, L] float32 log1p gaps)``, 0 = padding."""


class SequenceBlock(Protocol):
    """The behaviour sequences of ``N`` samples."""

    @property
    def length(self) -> int:
        """``L``: behaviours per sample, padding included."""
        ...

    def __len__(self) -> int: ...

    def take(self, rows: NDArray[np.integer]) -> Self:
        """The sequences of ``rows`` (any integer index array)."""
        ...

    def dense(self, rows: NDArray[np.integer] | None = None) -> SequenceArrays:
        """``[B, L]`` arrays of ``rows`` (None = all ``N``)."""
        ...

    def shortened(self, length: int) -> Self:
        """Each sample's most recent ``length`` (<= L) behaviours: the same features with a
        shorter window (a short-sequence model beside a long one)."""
        ...


@dataclass(frozen=True)
class DenseSequences:
    """Sequences given as ``[N, L]`` arrays (see the module docstring)."""

    item: NDArray[np.int64]
    category: NDArray[np.int64]
    gap: NDArray[np.float32]

    @property
    def length(self) -> int:
        return int(self.item.shape[1])

    def __len__(self) -> int:
        return int(self.item.shape[0])

    def take(self, rows: NDArray[np.integer]) -> DenseSequences:
        return DenseSequences(self.item[rows], self.category[rows], self.gap[rows])

    def dense(self, rows: NDArray[np.integer] | None = None) -> SequenceArrays:
        if rows is None:
            return self.item, self.category, self.gap
        return self.item[rows], self.category[rows], self.gap[rows]

    def shortened(self, length: int) -> DenseSequences:
        _check_shorter(length, self.length)
        return DenseSequences(
            self.item[:, :length], self.category[:, :length], self.gap[:, :length]
        )


@dataclass(frozen=True)
class RaggedSequences:
    """Behaviours stored once, windows per sample (see the module docstring).

    Attributes:
        item: ``[E]`` item ids (index + 1) of the behaviours, sorted by (user, time).
        category: ``[E]`` their category ids (index + 1, 0 = none).
        time: ``[E]`` their relative times (seconds).
        end: ``[N]`` one past each sample's most recent behaviour in the ``[E]`` arrays.
        count: ``[N]`` the sample's behaviours (``<= length``): positions
            ``end - count .. end - 1``, all of the sample's user.
        sample_time: ``[N]`` the samples' relative times, for the gaps.
        length: ``L``.
    """

    item: NDArray[np.int64]
    category: NDArray[np.int64]
    time: NDArray[np.int64]
    end: NDArray[np.int64]
    count: NDArray[np.int64]
    sample_time: NDArray[np.int64]
    length: int

    def __len__(self) -> int:
        return int(self.end.shape[0])

    def take(self, rows: NDArray[np.integer]) -> RaggedSequences:
        return RaggedSequences(
            self.item,
            self.category,
            self.time,
            self.end[rows],
            self.count[rows],
            self.sample_time[rows],
            self.length,
        )

    def shortened(self, length: int) -> RaggedSequences:
        _check_shorter(length, self.length)
        return RaggedSequences(
            self.item,
            self.category,
            self.time,
            self.end,
            np.minimum(self.count, length),
            self.sample_time,
            length,
        )

    def dense(self, rows: NDArray[np.integer] | None = None) -> SequenceArrays:
        end, count, at = self.end, self.count, self.sample_time
        if rows is not None:
            end, count, at = end[rows], count[rows], at[rows]
        shape = (end.shape[0], self.length)
        if self.item.shape[0] == 0 or shape[0] == 0 or self.length == 0:
            return (
                np.zeros(shape, np.int64),
                np.zeros(shape, np.int64),
                np.zeros(shape, np.float32),
            )
        if shape[0] > 1 and _all_equal(end, count, at):
            # One user at one time (a served request's candidates): one row, copied; building
            # it B times cost ~1 ms of a request at L = 1000.
            item, category, gap = self.dense(np.zeros(1, np.int64) if rows is None else rows[:1])
            n = shape[0]
            return np.repeat(item, n, 0), np.repeat(category, n, 0), np.repeat(gap, n, 0)
        slot = np.arange(self.length, dtype=np.int64)
        real = slot < count[:, None]
        pos = np.where(real, end[:, None] - 1 - slot, 0)
        item = np.where(real, self.item[pos], 0)
        category = np.where(real, self.category[pos], 0)
        seconds = (at[:, None] - self.time[pos]).astype(np.float64)
        gap = np.log1p(np.where(real, seconds, 0.0)).astype(np.float32)  # log1p(0) = 0
        return item, category, gap


def _all_equal(*columns: NDArray[np.int64]) -> bool:
    return all(bool((c == c[0]).all()) for c in columns)


def _check_shorter(length: int, current: int) -> None:
    if not 0 <= length <= current:
        raise ValueError(f"a window of {length} behaviours must be within 0..{current}")
