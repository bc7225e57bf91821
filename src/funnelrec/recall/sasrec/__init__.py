"""SASRec (Kang & McAuley 2018): self-attentive sequential recall.

* :mod:`.config`: :class:`SASRecConfig` (architecture, negatives, training, index).
* :mod:`.model`: item + learned position embeddings, pre-LN causal transformer blocks; the
  user vector is the output at the last history position, scored against the same item
  embedding table.
* :mod:`.data`: per-user sequences, training windows, batches, query histories.
* :mod:`.task`: the two-tower's logQ-corrected sampled softmax, at every target position.
* :mod:`.fit`: training with the shared loop, early stopping on held-out last items.
* :mod:`.retriever`: :class:`SASRec`, the Retriever (fit / retrieve / state).

Importing this package (or :mod:`.config`) imports no torch: :class:`SASRec` is resolved on
first attribute access (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec.recall.sasrec.config import SASRecConfig

if TYPE_CHECKING:
    from funnelrec.recall.sasrec.retriever import SASRec

# Torch-backed names served by __getattr__, with the module that defines each.
_LAZY = {"SASRec": "funnelrec.recall.sasrec.retriever"}


__getattr__ = lazy_getattr(globals(), _LAZY, __name__)


__all__ = ["SASRec", "SASRecConfig"]
