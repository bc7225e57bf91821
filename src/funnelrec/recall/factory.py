"""Build a retriever from its config (dispatch on the config type, no string registry)."""

from __future__ import annotations

from numpy.typing import NDArray

from funnelrec.recall.base import Retriever
from funnelrec.recall.cold_start import (
    DemographicPopular,
    DemographicPopularConfig,
    Onboarding,
    OnboardingConfig,
)
from funnelrec.recall.content import Content, ContentConfig
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.popular import Popular, PopularConfig
from funnelrec.recall.two_tower import TwoTower, TwoTowerConfig

AnyChannelConfig = (
    ItemCFConfig
    | PopularConfig
    | ContentConfig
    | DemographicPopularConfig
    | OnboardingConfig
    | TwoTowerConfig
)


def build_retriever(config: AnyChannelConfig) -> Retriever:
    """A fresh, unfitted retriever for ``config``."""
    match config:
        case ItemCFConfig():
            return ItemCF(config)
        case PopularConfig():
            return Popular(config)
        case TwoTowerConfig():
            return TwoTower(config)
        case ContentConfig():
            return Content(config)
        case DemographicPopularConfig():
            return DemographicPopular(config)
        case OnboardingConfig():
            return Onboarding(config)
    raise TypeError(f"no retriever for config {type(config).__name__}")


def retriever_from_state(config: AnyChannelConfig, state: dict[str, NDArray]) -> Retriever:
    """A fitted retriever restored from ``state()`` arrays."""
    match config:
        case ItemCFConfig():
            return ItemCF.from_state(config, state)
        case PopularConfig():
            return Popular.from_state(config, state)
        case TwoTowerConfig():
            return TwoTower.from_state(config, state)
        case ContentConfig():
            return Content.from_state(config, state)
        case DemographicPopularConfig():
            return DemographicPopular.from_state(config, state)
        case OnboardingConfig():
            return Onboarding.from_state(config, state)
    raise TypeError(f"no retriever for config {type(config).__name__}")
