"""The Dataset: canonical tables plus dense indices, as every fitted component sees them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.events import positive_expr
from funnelrec.data.frames import canonical_frames
from funnelrec.data.user_attributes import UserAttributeEncoder
from funnelrec.data.vocab import Vocabulary
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, check_schema


@dataclass(frozen=True)
class Dataset:
    """Interactions (with ``user_idx``/``item_idx``), optional item/user tables and vocabularies.

    ``as_of`` is the time (unix s) up to which this dataset may know anything: for a training
    split it is the split's cutoff, so time-decayed statistics are anchored there and never at a
    test-period timestamp.

    Build with :meth:`Dataset.build`; components read :attr:`positives` (every event that counts
    as a positive signal, i.e. everything but ``impression`` unless configured otherwise).
    """

    interactions: pl.DataFrame
    user_vocab: Vocabulary
    item_vocab: Vocabulary
    as_of: int
    items: pl.DataFrame | None = None
    users: pl.DataFrame | None = None
    positive_events: tuple[str, ...] | None = None

    @classmethod
    def from_frame(
        cls,
        interactions: Any,
        items: Any = None,
        users: Any = None,
        *,
        positive_events: tuple[str, ...] | None = None,
    ) -> Dataset:
        """A Dataset from in-memory tables (pandas or polars), validated like a data folder.

        Args:
            interactions: ``user_id, item_id, timestamp`` (unix s or ISO-8601) and optionally
                ``event`` (default ``click``), ``value`` (default 1.0), ``session_id``, ...
            items: optional ``item_id`` + attributes (``category``, ``created_at``, ``title``).
            users: optional ``user_id`` + attributes (``age``, ``gender``, ...).
            positive_events: events that count as positives (default: all but impression).

        Raises:
            DataError: a missing or mistyped column, an unparsable value, no usable row.

        Example:
            >>> import pandas as pd
            >>> ds = Dataset.from_frame(pd.DataFrame(
            ...     {"user_id": [1, 2], "item_id": ["a", "b"], "timestamp": [5, 6]}))
            >>> ds.n_users, ds.n_items, ds.interactions["event"].to_list()
            (2, 2, ['click', 'click'])
        """
        inter, item_table, user_table, _ = canonical_frames(interactions, items, users)
        return cls.build(inter, item_table, user_table, positive_events=positive_events)

    @classmethod
    def build(
        cls,
        interactions: pl.DataFrame,
        items: pl.DataFrame | None = None,
        users: pl.DataFrame | None = None,
        *,
        as_of: int | None = None,
        positive_events: tuple[str, ...] | None = None,
    ) -> Dataset:
        """Index a set of canonical tables.

        The item vocabulary covers items seen in ``interactions`` plus those listed in ``items``
        (the caller filters ``items`` to what existed at ``as_of``); likewise for users.
        """
        check_schema(interactions, INTERACTIONS)
        if items is not None:
            check_schema(items, ITEMS)
        if users is not None:
            check_schema(users, USERS)
        item_ids = interactions["item_id"]
        if items is not None:
            item_ids = pl.concat([item_ids, items["item_id"].cast(item_ids.dtype, strict=False)])
        user_ids = interactions["user_id"]
        if users is not None:
            user_ids = pl.concat([user_ids, users["user_id"].cast(user_ids.dtype, strict=False)])
        item_vocab = Vocabulary.from_ids(item_ids)
        user_vocab = Vocabulary.from_ids(user_ids)
        inter = interactions.with_columns(
            pl.Series("user_idx", user_vocab.encode(interactions["user_id"])),
            pl.Series("item_idx", item_vocab.encode(interactions["item_id"])),
        )
        if not _in_time_order(inter):
            # A log already in order keeps sharing the caller's column buffers: sorting it
            # would copy every column to change nothing (the log held twice).
            inter = inter.sort("timestamp", "user_idx", maintain_order=True)
        if items is not None:
            items = items.with_columns(pl.Series("item_idx", item_vocab.encode(items["item_id"])))
            items = items.filter(pl.col("item_idx") >= 0).unique("item_idx", keep="first")
            items = items.sort("item_idx")
        if users is not None:
            users = users.with_columns(pl.Series("user_idx", user_vocab.encode(users["user_id"])))
            users = users.filter(pl.col("user_idx") >= 0).unique("user_idx", keep="first")
            users = users.sort("user_idx")
        if as_of is None:
            latest = inter["timestamp"].max()  # None when there are no rows
            as_of = int(latest) + 1 if isinstance(latest, int) else 0
        return cls(inter, user_vocab, item_vocab, as_of, items, users, positive_events)

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    @cached_property
    def positives(self) -> pl.DataFrame:
        """Interactions that count as positive feedback (:mod:`funnelrec.data.events`), sorted
        by time."""
        keep = self.interactions.select(positive_expr(self.positive_events)).to_series()
        if keep.null_count() == 0 and bool(keep.all()):
            return self.interactions  # every row is positive: the same frame, not a copy
        return self.interactions.filter(keep)

    @cached_property
    def item_categories(self) -> NDArray[np.int32] | None:
        """Dense category index per item ``[n_items]`` (-1 = none), or None without categories."""
        if self.items is None or "category" not in self.items.columns:
            return None
        cats = self.items["category"].cast(pl.String)
        out = np.full(self.n_items, -1, dtype=np.int32)
        out[self.items["item_idx"].to_numpy()] = self.category_vocab.encode(cats)
        return out

    @cached_property
    def category_vocab(self) -> Vocabulary:
        """Category string <-> dense category index (empty without an items table)."""
        if self.items is None or "category" not in self.items.columns:
            return Vocabulary.from_ids(pl.Series([], dtype=pl.String))
        return Vocabulary.from_ids(self.items["category"].cast(pl.String))

    @cached_property
    def user_attr_encoder(self) -> UserAttributeEncoder:
        """Attribute vocabularies fitted on this dataset's users table."""
        return UserAttributeEncoder.fit(self.users)

    @cached_property
    def user_attr(self) -> NDArray[np.int32]:
        """``[n_users, A]`` attribute codes per user (0 = unknown), A may be 0."""
        encoder = self.user_attr_encoder
        out = np.zeros((self.n_users, len(encoder.columns)), dtype=np.int32)
        if self.users is not None and encoder.columns:
            out[self.users["user_idx"].to_numpy()] = encoder.encode(self.users)
        return out

    @cached_property
    def item_created_at(self) -> NDArray[np.int64] | None:
        """Creation time per item ``[n_items]`` (unix s), or None when the data has none."""
        if self.items is None or "created_at" not in self.items.columns:
            return None
        first_seen = (
            self.interactions.group_by("item_idx").agg(pl.col("timestamp").min()).sort("item_idx")
        )
        out = np.zeros(self.n_items, dtype=np.int64)
        out[first_seen["item_idx"].to_numpy()] = first_seen["timestamp"].to_numpy()
        known = self.items.filter(pl.col("created_at").is_not_null())
        out[known["item_idx"].to_numpy()] = known["created_at"].to_numpy()
        return out


def _in_time_order(frame: pl.DataFrame) -> bool:
    """Whether the rows already follow ``(timestamp, user_idx)``: the order
    :meth:`Dataset.build` sorts into (a stable sort of such rows changes nothing)."""
    if frame.height < 2:
        return True
    time_step = pl.col("timestamp").diff()
    user_step = pl.col("user_idx").cast(pl.Int64).diff()
    ordered = (time_step > 0) | ((time_step == 0) & (user_step >= 0))
    return bool(frame.select(ordered.all()).item())
