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

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec.recall.two_tower.config import HardNegativeConfig, TowerConfig, TwoTowerConfig

if TYPE_CHECKING:
    from funnelrec.recall.two_tower.retriever import TwoTower

# Torch-backed names served by __getattr__, with the module that defines each.
_LAZY = {"TwoTower": "funnelrec.recall.two_tower.retriever"}


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


__all__ = ["HardNegativeConfig", "TowerConfig", "TwoTower", "TwoTowerConfig"]
