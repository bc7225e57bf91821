"""What the funnel knows besides its fitted parts: users' attributes, items' attributes, and the
per-request serving state (:class:`RequestContext`).

A request in the service reads the artifact's tables plus the events the store recorded after
training, a failing channel must not fail the request, and the ranker reads a log index built
once at load. All of that enters :meth:`Recommender.run` as one typed value instead of swapping
the recommender's attributes, so the offline call and the served call are visibly the same
method with a different context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.dataset import Dataset
from funnelrec.data.user_attributes import UserAttributeEncoder
from funnelrec.data.vocab import Vocabulary

if TYPE_CHECKING:
    from funnelrec.features.pit import PreparedLog
    from funnelrec.recall.base import ChannelResult, Queries, Retriever


@dataclass(frozen=True)
class UserContext:
    """What the recommender knows about users besides their history.

    Attributes:
        encoder: attribute vocabularies (fitted on the training users).
        codes: ``[n_users, A]`` attribute codes of known users (0 = unknown).
        category_vocab: category string <-> index, for onboarding tags.
    """

    encoder: UserAttributeEncoder
    codes: NDArray[np.int32]
    category_vocab: Vocabulary

    @classmethod
    def from_dataset(cls, data: Dataset) -> UserContext:
        return cls(data.user_attr_encoder, data.user_attr, data.category_vocab)


@dataclass(frozen=True)
class ItemContext:
    """Item attributes the re-ranker reads (index = item_idx; grows as items are ingested).

    Attributes:
        category: ``[n_items]`` int32 category index (-1 = unknown), or None without categories.
        created_at: ``[n_items]`` int64 unix seconds (0 = unknown), or None.
    """

    category: NDArray[np.int32] | None
    created_at: NDArray[np.int64] | None

    @classmethod
    def from_dataset(cls, data: Dataset) -> ItemContext:
        return cls(data.item_categories, data.item_created_at)

    def extended(self, items: pl.DataFrame, n_new: int, category_vocab: Vocabulary) -> ItemContext:
        """With ``n_new`` ingested items (rows of ``items``) appended."""
        category = created = None
        if self.category is not None:
            new = np.full(n_new, -1, dtype=np.int32)
            if "category" in items.columns:
                new = category_vocab.encode(items["category"].cast(pl.String)).astype(np.int32)
            category = np.concatenate([self.category, new])
        if self.created_at is not None:
            new_t = np.zeros(n_new, dtype=np.int64)
            if "created_at" in items.columns:
                new_t = items["created_at"].cast(pl.Int64, strict=False).fill_null(0).to_numpy()
            created = np.concatenate([self.created_at, new_t])
        return ItemContext(category, created)


class ChannelPolicy(Protocol):
    """How one request calls its recall channels (the service: time budgets, failures dropped
    instead of failing the request; the replay: the channels the served request dropped)."""

    def retrieve(self, name: str, channel: Retriever, queries: Queries) -> ChannelResult:
        """``channel``'s result for ``queries`` (or an empty result when it is left out)."""
        ...


@dataclass(frozen=True)
class RequestContext:
    """Per-request state of a served (or replayed) request.

    Every field defaults to "what the fitted recommender holds", so ``RequestContext()``
    behaves exactly like no context.

    Attributes:
        history: the positives this request may read (``user_idx, item_idx, timestamp``): the
            artifact's rows of the request's user plus the store's newer events. None = the
            recommender's whole history.
        rank_log: what the ranker's point-in-time features read: a plain log, or the
            artifact's :class:`PreparedLog` (indexed once at load) with the store's events
            added (exactly the features of the concatenated log). None = the recommender's.
        channels: how channels are called; None = plainly, every channel.
        use_ranker: False serves the merge order (the service's fallback when ranking failed).
        scenario: where the request comes from (home feed, detail page, search, ...): a
            ranker with a scenario field (STAR, ``rank.scenario_feature``) reads it; None =
            unknown (the field's code 0).
    """

    history: pl.DataFrame | None = None
    rank_log: pl.DataFrame | PreparedLog | None = None
    channels: ChannelPolicy | None = None
    use_ranker: bool = True
    scenario: str | None = None
