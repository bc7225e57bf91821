"""Building blocks of the ranking models: embeddings, MLPs, expert banks, target attention,
the long-sequence search and attention units.

The torch-backed names load on first use (PEP 562), so ``funnelrec.rank.modules.config``
can be imported without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec.rank.modules.config import MLPConfig

if TYPE_CHECKING:
    from funnelrec.rank.modules.attention import TargetAttention
    from funnelrec.rank.modules.embedding import FieldEmbedding, gather_rows
    from funnelrec.rank.modules.long_sequence import (
        GapBuckets,
        MultiHeadTargetAttention,
        SimHash,
        chunked,
        collisions,
        hamming,
        select_top_k,
    )
    from funnelrec.rank.modules.mlp import MLP, activation_layer, linear
    from funnelrec.rank.modules.moe import ExpertBank, masked_softmax, mix

_LAZY = {
    "TargetAttention": "funnelrec.rank.modules.attention",
    "FieldEmbedding": "funnelrec.rank.modules.embedding",
    "gather_rows": "funnelrec.rank.modules.embedding",
    "GapBuckets": "funnelrec.rank.modules.long_sequence",
    "MultiHeadTargetAttention": "funnelrec.rank.modules.long_sequence",
    "SimHash": "funnelrec.rank.modules.long_sequence",
    "chunked": "funnelrec.rank.modules.long_sequence",
    "collisions": "funnelrec.rank.modules.long_sequence",
    "hamming": "funnelrec.rank.modules.long_sequence",
    "select_top_k": "funnelrec.rank.modules.long_sequence",
    "MLP": "funnelrec.rank.modules.mlp",
    "activation_layer": "funnelrec.rank.modules.mlp",
    "linear": "funnelrec.rank.modules.mlp",
    "ExpertBank": "funnelrec.rank.modules.moe",
    "masked_softmax": "funnelrec.rank.modules.moe",
    "mix": "funnelrec.rank.modules.moe",
}

__getattr__ = lazy_getattr(globals(), _LAZY, __name__)

__all__ = [
    "MLP",
    "ExpertBank",
    "FieldEmbedding",
    "GapBuckets",
    "MLPConfig",
    "MultiHeadTargetAttention",
    "SimHash",
    "TargetAttention",
    "activation_layer",
    "chunked",
    "collisions",
    "gather_rows",
    "hamming",
    "linear",
    "masked_softmax",
    "mix",
    "select_top_k",
]
