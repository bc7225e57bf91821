"""Mapping between external ids (at the edges) and dense int32 indices (inside)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from funnelrec.data.frames import gather_series

UNKNOWN = -1
SMALL_LOOKUP = 64
"""Up to this many ids, ``encode`` uses a per-vocabulary dict instead of a vectorised join."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """External id <-> dense index. Index ``i`` is ``ids[i]``; unknown ids encode to ``-1``.

    Example:
        >>> import polars as pl
        >>> v = Vocabulary.from_ids(pl.Series(["b", "a", "b"]))
        >>> v.encode(pl.Series(["a", "zz"])).tolist()
        [0, -1]
    """

    ids: pl.Series
    _lookup: dict[Any, int] | None = field(default=None, init=False, repr=False, compare=False)
    _arrow: pa.Array | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_ids(cls, ids: pl.Series) -> Vocabulary:
        """Build from any id column (duplicates and nulls dropped, order made deterministic)."""
        unique = ids.drop_nulls().unique().sort()
        return cls(unique.rename("id"))

    def __len__(self) -> int:
        return self.ids.len()

    @property
    def dtype(self) -> pl.DataType:
        return self.ids.dtype

    def encode(self, ids: pl.Series) -> NDArray[np.int32]:
        """External ids ``[N]`` -> dense indices ``[N]`` (int32, -1 for unknown or null).

        A few ids (a serving request) are looked up in a dict built once per vocabulary: a
        vectorised ``replace_strict`` builds a hash table of every id per call (1.7 ms for one
        user against 20k). Same matching either way (tested).
        """
        if ids.dtype != self.dtype:
            ids = ids.cast(pl.String).cast(self.dtype, strict=False)
        if ids.len() <= SMALL_LOOKUP:
            index = self._lookup
            if index is None:
                index = {v: i for i, v in enumerate(self.ids.to_list())}
                object.__setattr__(self, "_lookup", index)  # a cache, not state
            return np.array([index.get(v, UNKNOWN) for v in ids.to_list()], dtype=np.int32)
        mapped = ids.replace_strict(
            self.ids,
            pl.int_range(0, len(self), dtype=pl.Int32, eager=True),
            default=UNKNOWN,
            return_dtype=pl.Int32,
        )
        return mapped.fill_null(UNKNOWN).to_numpy()

    def decode(self, idx: NDArray[np.integer]) -> pl.Series:
        """Dense indices ``[N]`` -> external ids ``[N]`` (null where ``idx`` is -1)."""
        idx = np.asarray(idx)
        if idx.size == 0 or (idx.min() >= 0 and idx.max() < len(self)):  # every index known
            return gather_series(self.ids, idx)
        # An Arrow take (null index -> null id): ``Series.gather`` runs a lazy query through
        # polars' thread pool, ~1 ms of wake-up per served request on a loaded box.
        ids = self._arrow
        if ids is None:
            ids = self.ids.to_arrow()
            object.__setattr__(self, "_arrow", ids)  # a cache, not state
        taken = ids.take(pa.array(idx, mask=idx < 0))
        return pl.Series(self.ids.name, taken, dtype=self.ids.dtype)

    def save(self, path: Path) -> None:
        pl.DataFrame({"id": self.ids}).write_parquet(path)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(pl.read_parquet(path)["id"])


def id_series(ids: Sequence[Any] | pl.Series, name: str = "user_id") -> pl.Series:
    """External ids as a Series named ``name``: kept as given when they share a type, as
    strings when they mix types (``[17, "new-user"]``), so no id is lost or nulled;
    :meth:`Vocabulary.encode` matches either spelling.

    Example:
        >>> id_series([17, "new"]).to_list()
        ['17', 'new']
    """
    if isinstance(ids, pl.Series):
        return ids.rename(name)
    values = list(ids)
    try:
        return pl.Series(name, values)
    except (TypeError, pl.exceptions.PolarsError):
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)
