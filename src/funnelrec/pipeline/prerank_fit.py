"""The pre-ranker in the funnel: distilled from the fitted ranker on the ranking window's
samples (:func:`fit_prerank`, called by :func:`~funnelrec.pipeline.fit.fit_funnel` right after
the ranker), and its scores of window samples (the guard reads them).

Its training inputs are exactly what a request gives it: the samples are the window's merged
candidates with the same ``ev_*`` columns the funnel computes at serving time; the item
popularity of a sample is counted point in time (positives before the sample's time, from
the log its ranker features read), while serving reads one table counted up to the end of
the training data.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.events import positive_expr
from funnelrec.features.pit.evidence import evidence_columns
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.rank_samples import RankData
from funnelrec.rank.base import RankerProtocol
from funnelrec.rank.prerank import MERGED_EVIDENCE, PreRanker, build_inputs, item_popularity
from funnelrec.rank.prerank_train import DistillSet, distill

logger = logging.getLogger(__name__)


def window_popularity(
    samples: pl.DataFrame, log: pl.DataFrame, positive_events: tuple[str, ...] | None
) -> NDArray[np.float32]:
    """``[N, 3]`` each sample's item popularity from ``log``'s positives strictly before the
    sample's timestamp (:func:`~funnelrec.rank.prerank.item_popularity`)."""
    positives = log.filter(positive_expr(positive_events))
    return item_popularity(
        samples["item_idx"].to_numpy(),
        samples["timestamp"].to_numpy(),
        positives["item_idx"].to_numpy(),
        positives["timestamp"].to_numpy(),
    )


def window_scores(
    preranker: PreRanker,
    samples: pl.DataFrame,
    log: pl.DataFrame,
    positive_events: tuple[str, ...] | None,
) -> NDArray[np.float64]:
    """``[N]`` the pre-ranker's scores of window samples, popularity read point in time."""
    return preranker.score(samples, window_popularity(samples, log, positive_events))


def serving_popularity(train: Dataset) -> NDArray[np.float32]:
    """``[n_items, 3]`` every item's popularity as of ``train.as_of`` (the table requests
    read)."""
    positives = train.interactions.filter(positive_expr(train.positive_events))
    items = np.arange(len(train.item_vocab), dtype=np.int64)
    return item_popularity(
        items,
        np.full(items.shape[0], train.as_of, dtype=np.int64),
        positives["item_idx"].to_numpy(),
        positives["timestamp"].to_numpy(),
    )


def _distill_set(
    ranker: RankerProtocol,
    samples: pl.DataFrame,
    data: RankData,
    names: tuple[str, ...],
    config: ExperimentConfig,
) -> DistillSet:
    """The samples the pre-ranker judges at serving time (warm queries, known items) with
    their inputs and the ranker's fused scores."""
    cold = pl.Series(sorted(data.cold_queries), dtype=samples["query_id"].dtype)
    samples = samples.filter(
        ~pl.col("query_id").is_in(cold.implode()) & (pl.col("item_idx") < ranker.known_items)
    )
    teacher = ranker.score(samples, data.log)["score"].to_numpy().astype(np.float64)
    popularity = window_popularity(samples, data.log, config.data.positive_events)
    return DistillSet(
        build_inputs(samples, names, popularity),
        teacher,
        samples["query_id"].to_numpy().astype(np.int64),
    )


def fit_prerank(
    funnel: Funnel,
    data: RankData,
    train: Dataset,
    config: ExperimentConfig,
) -> dict[str, Any]:
    """Distil a pre-ranker from ``funnel.ranker`` on ``data``'s training samples (validated on
    its validation samples), set it on ``funnel`` and return its fit statistics.

    Raises:
        ValueError: the funnel has no ranker, or there is no sample to learn from.
    """
    ranker = funnel.ranker
    if ranker is None:
        raise ValueError("the pre-ranker is distilled from a ranker; the funnel has none")
    names = tuple(n for n in evidence_columns(data.train) if n != MERGED_EVIDENCE)
    fit_part = _distill_set(ranker, data.train, data, names, config)
    valid_part = _distill_set(ranker, data.valid, data, names, config)
    params, stats = distill(
        fit_part, valid_part, config.rank.prerank, k=config.guards.k, seed=config.rank.train.seed
    )
    preranker = PreRanker(config.rank.prerank, names, serving_popularity(train), params)
    preranker.stats = stats
    funnel.set_preranker(preranker)
    logger.info("pre-ranker fitted: %s", stats)
    return stats
