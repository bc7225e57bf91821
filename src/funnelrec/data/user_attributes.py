"""Categorical user attributes (age bucket, gender, region, occupation, ...) as dense codes.

Code 0 of every attribute is the explicit "unknown" slot (a user the model never saw, a value
that did not exist at training time, a null), never an implicit default; known values are
1..n. Numeric ages are bucketed (the MovieLens-1M buckets) so that a 31-year-old and a
33-year-old share a group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.vocab import Vocabulary

CANDIDATE_COLUMNS = ("age", "gender", "region", "occupation")
AGE_BINS = np.array([18, 25, 35, 45, 50, 56])
UNKNOWN_CODE = 0


def _as_text(users: pl.DataFrame, column: str) -> pl.Series:
    values = users[column]
    if column == "age" and values.dtype.is_numeric():
        bucket = np.searchsorted(AGE_BINS, values.fill_null(-1).to_numpy(), side="right")
        return pl.Series(column, [f"age{b}" for b in bucket]).set(values.is_null(), None)
    return values.cast(pl.String)


@dataclass(frozen=True)
class UserAttributeEncoder:
    """Per-attribute vocabularies fitted on the training users table.

    Example:
        >>> users = pl.DataFrame({"user_id": [1, 2], "gender": ["F", "M"], "age": [22, 40]})
        >>> enc = UserAttributeEncoder.fit(users)
        >>> enc.columns, enc.encode(users).tolist()
        (('age', 'gender'), [[1, 1], [2, 2]])
    """

    columns: tuple[str, ...]
    vocabs: tuple[Vocabulary, ...]

    @classmethod
    def fit(
        cls, users: pl.DataFrame | None, columns: tuple[str, ...] = CANDIDATE_COLUMNS
    ) -> UserAttributeEncoder:
        if users is None:
            return cls((), ())
        present = tuple(c for c in columns if c in users.columns)
        return cls(present, tuple(Vocabulary.from_ids(_as_text(users, c)) for c in present))

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Codes per attribute, the unknown slot included."""
        return tuple(len(v) + 1 for v in self.vocabs)

    def encode(self, users: pl.DataFrame) -> NDArray[np.int32]:
        """``[N, A]`` codes for a users frame (missing columns and unseen values -> 0)."""
        out = np.zeros((users.height, len(self.columns)), dtype=np.int32)
        for a, (column, vocab) in enumerate(zip(self.columns, self.vocabs, strict=True)):
            if column in users.columns:
                out[:, a] = vocab.encode(_as_text(users, column)) + 1
        return out

    def state(self) -> dict[str, NDArray]:
        out: dict[str, NDArray] = {"columns": np.array(self.columns, dtype=np.str_)}
        for column, vocab in zip(self.columns, self.vocabs, strict=True):
            out[f"vocab_{column}"] = vocab.ids.cast(pl.String).to_numpy().astype(np.str_)
        return out

    @classmethod
    def from_state(cls, state: dict[str, NDArray]) -> UserAttributeEncoder:
        columns = tuple(str(c) for c in state["columns"])
        vocabs = tuple(Vocabulary(pl.Series("id", state[f"vocab_{c}"].tolist())) for c in columns)
        return cls(columns, vocabs)


TAG_SEPARATOR = "|"


def tag_lists(users: pl.DataFrame) -> list[list[str]] | None:
    """The ``tags`` column (onboarding categories, ``|``-separated) as one list per row, or
    None when the table has no such column.

    Example:
        >>> tag_lists(pl.DataFrame({"tags": ["a|b", None, " c "]}))
        [['a', 'b'], [], ['c']]
    """
    if "tags" not in users.columns:
        return None
    return [
        [t.strip() for t in (text or "").split(TAG_SEPARATOR) if t.strip()]
        for text in users["tags"].cast(pl.String).to_list()
    ]
