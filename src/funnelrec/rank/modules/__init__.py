"""Building blocks of the ranking models: embeddings, MLPs, expert banks, target attention.

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
    from funnelrec.rank.modules.mlp import MLP, activation_layer, linear
    from funnelrec.rank.modules.moe import ExpertBank, masked_softmax, mix

_LAZY = {
    "TargetAttention": "funnelrec.rank.modules.attention",
    "FieldEmbedding": "funnelrec.rank.modules.embedding",
    "gather_rows": "funnelrec.rank.modules.embedding",
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
    "MLPConfig",
    "TargetAttention",
    "activation_layer",
    "gather_rows",
    "linear",
    "masked_softmax",
    "mix",
]
