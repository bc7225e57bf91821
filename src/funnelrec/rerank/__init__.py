"""Re-ranking: diversify the ranked list (MMR, greedy DPP) and apply the business rules."""

from funnelrec.rerank.base import ItemSide, ListReranker, Reranker
from funnelrec.rerank.config import RerankConfig, RulesConfig
from funnelrec.rerank.dpp import DPPSelection, dpp_greedy, dpp_log_det, dpp_select
from funnelrec.rerank.mmr import mmr_select, relevance_order
from funnelrec.rerank.rules import apply_rules, eligible
from funnelrec.rerank.similarity import category_kernel, cosine_kernel, item_kernel

__all__ = [
    "DPPSelection",
    "ItemSide",
    "ListReranker",
    "RerankConfig",
    "Reranker",
    "RulesConfig",
    "apply_rules",
    "category_kernel",
    "cosine_kernel",
    "dpp_greedy",
    "dpp_log_det",
    "dpp_select",
    "eligible",
    "item_kernel",
    "mmr_select",
    "relevance_order",
]
