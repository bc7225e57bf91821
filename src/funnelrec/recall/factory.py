"""Build a retriever from its config (dispatch on the config type, no string registry)."""

from __future__ import annotations

from numpy.typing import NDArray

from funnelrec.recall.base import Retriever
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.popular import Popular, PopularConfig


def build_retriever(config: ItemCFConfig | PopularConfig) -> Retriever:
    """A fresh, unfitted retriever for ``config``."""
    match config:
        case ItemCFConfig():
            return ItemCF(config)
        case PopularConfig():
            return Popular(config)
    raise TypeError(f"no retriever for config {type(config).__name__}")


def retriever_from_state(
    config: ItemCFConfig | PopularConfig, state: dict[str, NDArray]
) -> Retriever:
    """A fitted retriever restored from ``state()`` arrays."""
    match config:
        case ItemCFConfig():
            return ItemCF.from_state(config, state)
        case PopularConfig():
            return Popular.from_state(config, state)
    raise TypeError(f"no retriever for config {type(config).__name__}")
