"""The funnel report: what each stage hands on, judged on the held-out truth, and the
re-ranking accuracy-diversity sweep.

Both read what :func:`funnelrec.eval.protocol.evaluate_recall` already produced (per-list
metrics, candidate recall of whole stages, the ranker's Scores tables), so they add no
second pass through recall and ranking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.csr import csr_rows
from funnelrec.metrics.topn import (
    category_diversity,
    drop_masked,
    hit_matrix,
    intra_list_diversity,
    ndcg_at_k,
    recall_at_k,
)
from funnelrec.pipeline.funnel import Funnel, consumed_items
from funnelrec.recall.merge import candidates_to_matrix
from funnelrec.rerank.base import ItemSide, ListReranker

# The sweep's grids: 1.0 (MMR) and 0.99 (DPP) are pure relevance, the others trade it away.
MMR_LAMBDAS = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3)
DPP_THETAS = (0.99, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8, 0.7, 0.5)

# stage row -> (list in metrics["recall"], candidate-recall stage, latency stage)
_STAGES = (
    ("recall", None, "recall", "recall"),
    ("merge", "merged", "merge", "merge"),
    ("rank", "ranked", "rank", "rank"),
    ("rerank", "reranked", None, "rerank"),
)


def diversity_metrics(matrix: NDArray[np.int32], side: ItemSide, k: int) -> dict[str, float]:
    """ILD@k over the re-ranker's similarity vectors and category ILD / coverage@k."""
    out: dict[str, float] = {}
    if side.embeddings is not None:
        out[f"ild@{k}"] = intra_list_diversity(matrix, side.embeddings, k)
    if side.category is not None:
        out[f"category_ild@{k}"], out[f"category_coverage@{k}"] = category_diversity(
            matrix, side.category, k
        )
    return out


def funnel_summary(
    lists: Mapping[str, Mapping[str, float]],
    stages: Mapping[str, Mapping[str, float]],
    channel_share: Mapping[str, Mapping[str, float]],
    latency_ms: Mapping[str, Mapping[str, float]] | None,
    k: int,
) -> dict[str, Any]:
    """One row per stage (candidates handed on, their recall of the truth, top-k accuracy,
    diversity, novelty, request latency) and the channels' share of the final list."""
    rows = []
    for stage, list_name, cand_stage, latency_stage in _STAGES:
        values = lists.get(list_name, {}) if list_name else {}
        if list_name and not values:
            continue
        cand = stages.get(cand_stage, {}) if cand_stage else {}
        lat = (latency_ms or {}).get(latency_stage, {})
        rows.append(
            {
                "stage": stage,
                "candidates": cand.get("mean_candidates"),
                "candidate_recall": cand.get("candidate_recall"),
                f"recall@{k}": values.get(f"recall@{k}"),
                f"ndcg@{k}": values.get(f"ndcg@{k}"),
                f"ild@{k}": values.get(f"ild@{k}"),
                f"category_ild@{k}": values.get(f"category_ild@{k}"),
                f"category_coverage@{k}": values.get(f"category_coverage@{k}"),
                f"novelty@{k}": values.get(f"novelty@{k}"),
                "p50_ms": lat.get("p50"),
                "p99_ms": lat.get("p99"),
            }
        )
    return {"k": k, "stages": rows, "channels": dict(channel_share)}


def rerank_sweep(
    recommender: Funnel,
    eval_queries: Any,
    scored: pl.DataFrame,
    config: ExperimentConfig,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Re-rank the ranker's lists of a seeded query sample with MMR over lambda and DPP over
    theta; NDCG/Recall@k and diversity of each point, of the ranked list (no re-ranking) and
    of the configured default, all on the same sample."""
    assert recommender.reranker is not None
    k = min(config.eval.ks)
    queries = eval_queries.queries
    n_sample = min(config.eval.rerank_sweep_queries, len(queries))
    rows = np.sort(rng.choice(len(queries), n_sample, replace=False))
    sample = queries.take(rows)
    pool = scored.join(pl.DataFrame({"query_id": sample.query_id}), on="query_id", how="semi")
    truth_ptr, truth_idx = csr_rows(eval_queries.truth_ptr, eval_queries.truth_idx, rows)
    mask = None
    if eval_queries.mask_ptr is not None:
        mask = csr_rows(eval_queries.mask_ptr, eval_queries.mask_idx, rows)
    side = recommender.item_side()
    consumed = consumed_items(sample)

    def judge(table: pl.DataFrame) -> dict[str, float]:
        matrix = candidates_to_matrix(table, sample.query_id, k, rank_column="rank")
        if mask is not None:
            matrix = drop_masked(matrix, *mask)
        hits = hit_matrix(matrix, truth_ptr, truth_idx)
        return {
            f"ndcg@{k}": ndcg_at_k(hits, truth_ptr, k),
            f"recall@{k}": recall_at_k(hits, truth_ptr, k),
            **diversity_metrics(matrix, side, k),
        }

    base = recommender.reranker.config

    def rerun(method: str, field: str | None, value: float | None) -> dict[str, float]:
        update: dict[str, Any] = {"method": method}
        if field is not None:
            update[field] = value
        reranker = ListReranker(base.model_copy(update=update))
        return judge(reranker.rerank(pool, k, side, consumed=consumed, now=sample.timestamp))

    curves: dict[str, list[dict[str, float]]] = {}
    for method, field, grid in (("mmr", "lam", MMR_LAMBDAS), ("dpp", "theta", DPP_THETAS)):
        curves[method] = [{"param": v, **rerun(method, field, v)} for v in grid]
    default = rerun(base.method, None, None)
    return {
        "k": k,
        "method": base.method,
        "params": {"lam": base.lam} if base.method == "mmr" else {"theta": base.theta},
        "similarity": "embeddings" if side.embeddings is not None else "category",
        "sweep_queries": int(n_sample),
        "baseline": judge(pool),
        "default": default,
        "tradeoff": curves,
    }
