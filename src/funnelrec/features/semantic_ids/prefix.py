"""Statistics of code prefixes, and an item's inherited statistic: that of its longest prefix
with enough support.

A statistic is a rate ``num / den`` summed over the items of a prefix: popularity (``num`` =
an item's decayed positives, ``den`` = 1 per item: positives per item) or CTR (clicks over
impressions). A new item has no ``num`` or ``den`` of its own, but its content gives it a
code, and its code's prefixes hold items like it: it inherits the rate of the longest prefix
that at least ``min_support`` items share, smoothed towards the global rate, or the global
rate when no prefix is supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class OwnTotals:
    """The queried items' own contributions to the table, left out of what they inherit
    (so a fitted item's prior is what its prefix says about it, as for a new item).

    Attributes:
        num: ``[M]`` float64 the item's own numerator (0 for non-members).
        den: ``[M]`` float64 its own denominator (0 for non-members).
        member: ``[M]`` bool whether the item was counted in the table.
    """

    num: NDArray[np.float64]
    den: NDArray[np.float64]
    member: NDArray[np.bool_]


@dataclass(frozen=True)
class PrefixStats:
    """Summed ``num``, ``den`` and item counts per prefix, level by level.

    Attributes:
        level_ptr: ``[L + 1]`` int64 offsets of each prefix length's rows.
        keys: ``[G]`` int64 prefix keys (:func:`~funnelrec.features.semantic_ids.codes.
            prefix_keys`), sorted within each level.
        num: ``[G]`` float64 summed numerators.
        den: ``[G]`` float64 summed denominators.
        support: ``[G]`` int64 items per prefix.
        total: ``[2]`` float64 the global ``(num, den)``.

    Example:
        >>> keys = np.array([[0, 0], [0, 0], [0, 1], [1, 2]])
        >>> stats = PrefixStats.fit(keys, np.array([4.0, 2, 0, 9]), np.ones(4))
        >>> rate, level = stats.inherit(np.array([[0, 0], [0, 5], [7, 9]]), min_support=2)
        >>> rate.tolist(), level.tolist()  # full prefix; first level only; global
        ([3.0, 2.0, 3.75], [2, 1, 0])
    """

    level_ptr: NDArray[np.int64]
    keys: NDArray[np.int64]
    num: NDArray[np.float64]
    den: NDArray[np.float64]
    support: NDArray[np.int64]
    total: NDArray[np.float64]

    @classmethod
    def fit(
        cls, keys: NDArray[np.integer], num: NDArray[np.floating], den: NDArray[np.floating]
    ) -> PrefixStats:
        """Sum ``num`` and ``den`` of ``[N]`` items over each of their ``L`` prefixes ``[N, L]``."""
        keys = np.asarray(keys, dtype=np.int64)
        num = np.asarray(num, dtype=np.float64)
        den = np.asarray(den, dtype=np.float64)
        if keys.ndim != 2 or num.shape != (keys.shape[0],) or den.shape != num.shape:
            raise ValueError(
                f"prefix stats: keys {keys.shape}, num {num.shape} and den {den.shape} differ"
            )
        parts: list[tuple[NDArray, ...]] = []
        for level in range(keys.shape[1]):
            uniq, inverse, counts = np.unique(
                keys[:, level], return_inverse=True, return_counts=True
            )
            parts.append(
                (
                    uniq,
                    np.bincount(inverse, weights=num, minlength=uniq.shape[0]),
                    np.bincount(inverse, weights=den, minlength=uniq.shape[0]),
                    counts.astype(np.int64),
                )
            )
        sizes = [p[0].shape[0] for p in parts]
        return cls(
            level_ptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            keys=np.concatenate([p[0] for p in parts]).astype(np.int64),
            num=np.concatenate([p[1] for p in parts]).astype(np.float64),
            den=np.concatenate([p[2] for p in parts]).astype(np.float64),
            support=np.concatenate([p[3] for p in parts]).astype(np.int64),
            total=np.array([num.sum(), den.sum()], dtype=np.float64),
        )

    @property
    def levels(self) -> int:
        return int(self.level_ptr.shape[0] - 1)

    @property
    def global_rate(self) -> float:
        """``num / den`` over every item (0 without any ``den``)."""
        return float(self.total[0] / self.total[1]) if self.total[1] > 0 else 0.0

    def inherit(
        self,
        keys: NDArray[np.integer],
        *,
        min_support: int,
        smoothing: float = 0.0,
        own: OwnTotals | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Each item's rate from its longest prefix with ``>= min_support`` items.

        Args:
            keys: ``[M, L]`` the items' prefix keys.
            min_support: items a prefix needs (not counting the item itself under ``own``).
            smoothing: pseudo-``den`` at the global rate added to every prefix's rate.
            own: the items' own contributions, left out (None: nothing left out).

        Returns:
            ``(rate [M] float64, level [M] int64)``: ``level`` is the prefix length used, 0 =
            no prefix was supported (the global rate).
        """
        keys = np.asarray(keys, dtype=np.int64)
        if keys.ndim != 2 or keys.shape[1] != self.levels:
            raise ValueError(f"keys of shape {keys.shape} do not match {self.levels} levels")
        m = keys.shape[0]
        own = own or OwnTotals(np.zeros(m), np.zeros(m), np.zeros(m, dtype=bool))
        glob = self.global_rate
        rate = np.full(m, glob, dtype=np.float64)
        level_used = np.zeros(m, dtype=np.int64)
        todo = np.ones(m, dtype=bool)
        for level in range(self.levels - 1, -1, -1):  # longest prefix first
            lo, hi = self.level_ptr[level], self.level_ptr[level + 1]
            table = self.keys[lo:hi]
            if table.shape[0] == 0:
                continue
            j = np.minimum(np.searchsorted(table, keys[:, level]), table.shape[0] - 1)
            row = lo + j
            support = self.support[row] - own.member
            hit = todo & (table[j] == keys[:, level]) & (support >= min_support)
            num = self.num[row[hit]] - own.num[hit] + smoothing * glob
            den = self.den[row[hit]] - own.den[hit] + smoothing
            rate[hit] = np.where(den > 0, num / np.where(den > 0, den, 1.0), glob)
            level_used[hit] = level + 1
            todo &= ~hit
        return rate, level_used

    def to_arrays(self) -> dict[str, NDArray]:
        return {
            "level_ptr": self.level_ptr,
            "keys": self.keys,
            "num": self.num,
            "den": self.den,
            "support": self.support,
            "total": self.total,
        }

    @classmethod
    def from_arrays(cls, state: dict[str, NDArray]) -> PrefixStats:
        return cls(
            level_ptr=np.asarray(state["level_ptr"], dtype=np.int64),
            keys=np.asarray(state["keys"], dtype=np.int64),
            num=np.asarray(state["num"], dtype=np.float64),
            den=np.asarray(state["den"], dtype=np.float64),
            support=np.asarray(state["support"], dtype=np.int64),
            total=np.asarray(state["total"], dtype=np.float64),
        )
