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
"""

from funnelrec.recall.two_tower.config import HardNegativeConfig, TowerConfig, TwoTowerConfig
from funnelrec.recall.two_tower.retriever import TwoTower

__all__ = ["HardNegativeConfig", "TowerConfig", "TwoTower", "TwoTowerConfig"]
