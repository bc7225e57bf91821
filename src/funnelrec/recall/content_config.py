"""The content channel's configuration, importable without Faiss, torch or the text models.

Experiment configs embed :class:`ContentConfig`; the retriever that owns the embeddings and the
index is :class:`funnelrec.recall.content.Content`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from funnelrec.features.text import TextEncoderConfig
from funnelrec.index.config import ExactIndexConfig, IndexConfig
from funnelrec.recall.base import RetrieverBase, RetrieverConfig
from funnelrec.recall.prefix_prior import PrefixPriorConfig

__all__ = ["ContentConfig"]


class ContentConfig(RetrieverConfig):
    """Content-based item-to-item channel.

    Example:
        >>> ContentConfig(encoder=TextEncoderConfig(kind="hashing", dim=32)).index.kind
        'exact'
    """

    kind: Literal["content"] = "content"
    encoder: TextEncoderConfig = TextEncoderConfig()
    index: IndexConfig = Field(default_factory=ExactIndexConfig)
    text_columns: tuple[str, ...] | None = Field(
        None, description="Item columns forming the text (None = title, category, genres, ...)."
    )
    history_len: int = Field(20, gt=0, description="Most recent distinct history items used.")
    recency_decay: float = Field(0.8, gt=0, le=1, description="Weight of the r-th newest item.")
    aggregate: Literal["mean", "sum"] = Field(
        "mean",
        description="'mean': one search with the weighted mean vector; 'sum': one search per "
        "history item, similarities summed with the recency weights.",
    )
    pool: Literal["auto", "all", "fresh"] = Field(
        "auto",
        description="Candidates: every embedded item, or only items created within "
        "fresh_age_s before the query time (and items ingested after training); auto = fresh "
        "when the items have a created_at column, all otherwise (decided at fit).",
    )
    fresh_age_s: float = Field(7 * 86_400.0, gt=0, description="pool='fresh': maximum age.")
    prefix_prior: PrefixPriorConfig | None = Field(
        None,
        description="Add the log-lift of each candidate's semantic-id prefix statistics "
        "(popularity or CTR, inherited by new items from items with similar codes) to its "
        "similarity; None = similarity only (docs/recall.md, 'Semantic ids').",
    )

    def retriever_class(self) -> type[RetrieverBase]:
        """The channel this config builds."""
        from funnelrec.recall.content import Content  # the index and encoders: on use

        return Content
