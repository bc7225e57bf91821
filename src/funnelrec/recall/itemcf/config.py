"""The typed, frozen configuration of the ItemCF recall channel."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from funnelrec.recall.base import RetrieverBase, RetrieverConfig

DAY_S = 86_400.0


class ItemCFConfig(RetrieverConfig):
    """Time-decayed item-to-item collaborative filtering (see :mod:`funnelrec.recall.itemcf`).

    The defaults are the time-aware variant (decays on, window 50) tuned for the default
    protocol, where the model is fitted at ``as_of`` and queried right after (a global temporal
    split, or production): a 14-day pair-age decay and ``alpha=0.75``. Under leave-last-out,
    where query times spread over the whole log, switch the pair-age decay off
    (:meth:`for_leave_last_out`). :meth:`plain` gives textbook co-occurrence ItemCF with cosine
    normalisation.

    Example:
        >>> ItemCFConfig(neighbors=20).window
        50
        >>> ItemCFConfig.plain().window is None
        True
    """

    kind: Literal["itemcf"] = "itemcf"

    # ---- fit: which pairs co-occur and how much each counts ----
    neighbors: int = Field(100, gt=0, description="Similar items kept per item (top-K).")
    window: int | None = Field(
        50, gt=0, description="Max distance |p - q| between positions in a user's sequence."
    )
    time_decay: Literal["exponential", "none"] = Field(
        "exponential", description="Weight of a pair by the time between its two interactions."
    )
    time_half_life_s: float = Field(
        DAY_S, gt=0, description="Half-life (s) of the exponential time decay."
    )
    position_decay: float = Field(
        0.9, ge=1e-6, le=1, description="Pair weight factor per extra step between positions."
    )
    forward_weight: float = Field(1.0, ge=0, description="Weight when j comes after i.")
    backward_weight: float = Field(0.7, ge=0, description="Weight when j comes before i.")
    user_activity_penalty: bool = Field(
        True, description="Scale each user's pairs by 1 / log(1 + |I_u|)."
    )
    created_half_life_s: float | None = Field(
        None,
        gt=0,
        description="Half-life (s) of the decay by items' creation-time gap (None = off; also "
        "off when the data has no item created_at).",
    )
    pair_half_life_s: float | None = Field(
        14 * DAY_S,
        gt=0,
        description="Half-life (s) of the decay by a pair's age at fit time, as_of minus the "
        "later of its two interactions: recent co-occurrences count more (None = off).",
    )
    alpha: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Normalisation C / (|N(i)|^alpha * |N(j)|^(1 - alpha)): 0.5 is cosine; "
        "higher values penalise a popular source i more than a popular candidate j.",
    )
    popularity_correction: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Divide each kept similarity by the candidate's |N(j)|^beta and re-order "
        "(popularity-bias correction, docs/debiasing.md; 0 = off).",
    )

    # ---- retrieve: how a query's history is weighted ----
    history_len: int = Field(50, gt=0, description="Most recent distinct history items used.")
    recency_decay: float = Field(
        0.9, gt=0, le=1, description="Weight factor per step back in the history (r = 0 newest)."
    )
    history_half_life_s: float | None = Field(
        None, gt=0, description="Extra decay by query time minus interaction time (None = off)."
    )

    @classmethod
    def for_leave_last_out(cls, **overrides: object) -> ItemCFConfig:
        """The time-decayed defaults without the fit-time pair-age decay, cosine-normalised.

        Under leave-last-out each user is queried at their own last event, so "recent relative
        to the fit time" says nothing about what was trending when a given query was made.
        """
        return cls.model_validate({"pair_half_life_s": None, "alpha": 0.5, **overrides})

    @classmethod
    def plain(
        cls,
        *,
        k: int = 200,
        neighbors: int = 100,
        exclude_seen: bool = True,
        history_len: int = 50,
    ) -> ItemCFConfig:
        """Textbook ItemCF: all co-occurring pairs, unit weights, cosine normalisation.

        No time/position/created decay, no direction weights, no activity penalty, alpha 0.5,
        no window and no recency weighting at retrieval time.
        """
        return cls(
            k=k,
            exclude_seen=exclude_seen,
            neighbors=neighbors,
            window=None,
            time_decay="none",
            position_decay=1.0,
            forward_weight=1.0,
            backward_weight=1.0,
            user_activity_penalty=False,
            created_half_life_s=None,
            pair_half_life_s=None,
            alpha=0.5,
            history_len=history_len,
            recency_decay=1.0,
            history_half_life_s=None,
        )

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        from funnelrec.recall.itemcf.model import ItemCF  # numba kernels: imported on use

        return ItemCF
