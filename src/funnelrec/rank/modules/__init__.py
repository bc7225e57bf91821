"""Building blocks of the ranking models: embeddings, MLPs, expert banks, target attention."""

from funnelrec.rank.modules.attention import TargetAttention
from funnelrec.rank.modules.embedding import FieldEmbedding, gather_rows
from funnelrec.rank.modules.mlp import MLP, activation_layer, linear
from funnelrec.rank.modules.moe import ExpertBank, masked_softmax, mix

__all__ = [
    "MLP",
    "ExpertBank",
    "FieldEmbedding",
    "TargetAttention",
    "activation_layer",
    "gather_rows",
    "linear",
    "masked_softmax",
    "mix",
]
