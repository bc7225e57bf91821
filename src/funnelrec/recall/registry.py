"""The channel registry: every recall channel the funnel can configure.

Adding a channel is one module (a config subclassing ``RetrieverConfig`` whose
``retriever_class()`` names a ``RetrieverBase`` subclass) plus one member of
:data:`ChannelConfig` below: the config loader, the funnel, the artifact store, the contract
suite (``tests/contract``) and the public API all read this union, nothing else needs an edit.
Importing it imports no torch or Faiss (each config imports its channel on use).
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from numpy.typing import NDArray
from pydantic import Field

from funnelrec.recall.als import ALSConfig
from funnelrec.recall.base import Retriever, WarmStartable
from funnelrec.recall.cold_start import DemographicPopularConfig, OnboardingConfig
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.ease import EASEConfig
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.popular import PopularConfig
from funnelrec.recall.sasrec.config import SASRecConfig
from funnelrec.recall.swing.config import SwingConfig
from funnelrec.recall.two_tower.config import TwoTowerConfig

ChannelConfig = Annotated[
    ItemCFConfig
    | PopularConfig
    | ContentConfig
    | DemographicPopularConfig
    | OnboardingConfig
    | TwoTowerConfig
    | EASEConfig
    | ALSConfig
    | SASRecConfig
    | SwingConfig,
    Field(discriminator="kind"),
]
"""Any channel's config, told apart by ``kind`` (one member per channel)."""

CHANNEL_CONFIGS: tuple[type[Any], ...] = get_args(get_args(ChannelConfig)[0])
"""The config classes of :data:`ChannelConfig`, for code that iterates over channels."""


def build_retriever(config: ChannelConfig) -> Retriever:
    """A fresh, unfitted retriever for ``config``."""
    return config.retriever_class()(config)


def warm_started(channel: Retriever, earlier: Retriever | None) -> Retriever:
    """``channel``, told to begin its fit from ``earlier`` (the same channel fitted on a subset
    of the data it is about to fit on) when it can: a warm start."""
    if earlier is not None and isinstance(channel, WarmStartable):
        channel.start_from(earlier)
    return channel


def retriever_from_state(config: ChannelConfig, state: dict[str, NDArray[Any]]) -> Retriever:
    """A fitted retriever restored from its ``state()`` arrays."""
    return config.retriever_class().from_state(config, state)
