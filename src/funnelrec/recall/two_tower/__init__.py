"""Two-tower (dual encoder) recall channel with EBR-style negatives.

* :mod:`.config`: :class:`TwoTowerConfig` (towers, text encoder, index, negatives, training).
* :mod:`.model`: the user tower (attributes + pooled recent history) and the item tower
  (id + category + creation-time bucket + text), both ending in L2 normalisation.
* :mod:`.task`: sampled softmax with logQ correction and accidental-hit masking.
* :mod:`.sampling`: uniform, same-category and mined (rank-window) hard negatives.
* :mod:`.data`: examples (history strictly before each positive) and batches.
* :mod:`.retriever`: :class:`TwoTower`, the Retriever (fit / retrieve / add_items / state).

Training uses the shared loop :func:`funnelrec.train.train`; serving searches a vector index
whose metric (inner product of unit vectors) equals the training similarity.

Importing this package (or :mod:`.config`) imports no torch: :class:`TwoTower` is resolved on
first attribute access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from funnelrec.recall.two_tower.config import HardNegativeConfig, TowerConfig, TwoTowerConfig

if TYPE_CHECKING:
    from funnelrec.recall.two_tower.retriever import TwoTower

# Torch-backed names served by __getattr__, with the module that defines each.
_LAZY = {"TwoTower": "funnelrec.recall.two_tower.retriever"}


def __getattr__(name: str) -> object:
    """PEP 562 hook: import the retriever (and torch) only when it is asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["HardNegativeConfig", "TowerConfig", "TwoTower", "TwoTowerConfig"]
