"""The typed, frozen configuration of the Swing recall channel."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from funnelrec.recall.base import RetrieverBase, RetrieverConfig


class SwingConfig(RetrieverConfig):
    """Swing user-pair item-item similarity (see :mod:`funnelrec.recall.swing`).

    Opt-in: not in the default channel set. The defaults follow the common public setting
    (Alibaba's Alink Swing: ``alpha = 1``, user weights ``(|I_u| + 5) ** -0.35``).

    Example:
        >>> SwingConfig().max_users_per_item
        200
    """

    kind: Literal["swing"] = "swing"

    # ---- fit ----
    neighbors: int = Field(100, gt=0, description="Similar items kept per item (top-K).")
    alpha: float = Field(
        1.0, gt=0, description="Smoothing in 1 / (alpha + |I_u ∩ I_v|) of a user pair."
    )
    user_alpha: float = Field(
        5.0, ge=0, description="User weight (|I_u| + user_alpha) ** -user_beta: smoothing."
    )
    user_beta: float = Field(0.35, ge=0, description="User weight exponent (0 = unweighted Swing).")
    max_users_per_item: int | None = Field(
        200,
        ge=2,
        description="Most recent users kept per item (Swing is quadratic in them; None = all).",
    )

    # ---- retrieve: how a query's history is weighted (ItemCF's rule) ----
    history_len: int = Field(50, gt=0, description="Most recent distinct history items used.")
    recency_decay: float = Field(
        0.9, gt=0, le=1, description="Weight factor per step back in the history (r = 0 newest)."
    )
    history_half_life_s: float | None = Field(
        None, gt=0, description="Extra decay by query time minus interaction time (None = off)."
    )

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        from funnelrec.recall.swing.model import Swing  # numba kernels: imported on use

        return Swing
