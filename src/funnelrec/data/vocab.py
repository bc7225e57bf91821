"""Mapping between external ids (at the edges) and dense int32 indices (inside)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

UNKNOWN = -1


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
        """External ids ``[N]`` -> dense indices ``[N]`` (int32, -1 for unknown or null)."""
        if ids.dtype != self.dtype:
            ids = ids.cast(pl.String).cast(self.dtype, strict=False)
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
        valid = idx >= 0
        out = self.ids.gather(np.where(valid, idx, 0))
        return out.set(pl.Series(~valid), None) if not valid.all() else out

    def save(self, path: Path) -> None:
        pl.DataFrame({"id": self.ids}).write_parquet(path)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(pl.read_parquet(path)["id"])
