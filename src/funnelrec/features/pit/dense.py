"""The dense point-in-time features, assembled in :func:`dense_feature_names` order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.config import PointInTimeConfig, dense_feature_names
from funnelrec.features.pit.evidence import read_evidence
from funnelrec.features.pit.item_stats import item_age_column, item_columns
from funnelrec.features.pit.log import EventRules, LogArrays
from funnelrec.features.pit.prepared import PreparedLog
from funnelrec.features.pit.state import FittedState
from funnelrec.features.pit.stats import StatInputs
from funnelrec.features.pit.user_stats import (
    user_category_columns,
    user_columns,
    user_item_columns,
)

AggregateEngine = Callable[
    [PointInTimeConfig, FittedState, pl.DataFrame, LogArrays], NDArray[np.float64] | None
]
"""Computes a batch's aggregate columns (every dense column before the recall evidence, in
:func:`dense_feature_names` order) somewhere else, e.g. on Spark
(:meth:`funnelrec.spark.engine.SparkEngine.aggregates`); None = here."""

_AGGREGATES: ContextVar[AggregateEngine | None] = ContextVar("aggregate_engine", default=None)


@contextmanager
def aggregate_engine(engine: AggregateEngine) -> Iterator[None]:
    """Compute the aggregate columns of every unprepared batch inside the block with
    ``engine`` (``train --engine spark``). A context rather than a parameter, as
    :func:`funnelrec.pipeline.recall_fit.channel_fitter`: the features are computed in many
    places of a fit (samples, validation, guards), and all of them must use the engine."""
    token = _AGGREGATES.set(engine)
    try:
        yield
    finally:
        _AGGREGATES.reset(token)


def assemble_dense(
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    log: pl.DataFrame | LogArrays,
    prepared: PreparedLog | None = None,
) -> NDArray[np.float64]:
    """``[N, D]`` unstandardised dense features (names: :func:`dense_feature_names`, then the
    fitted recall-evidence columns).

    Counts are ``log1p(count)``, recency and age ``log1p(seconds)``, CTR and share raw.

    Args:
        config: the feature settings.
        state: the fitted state (its positive rule decides which events count).
        samples: ``[N]`` samples (``user_idx, item_idx, timestamp``).
        log: ``[E]`` events (a frame, or its arrays under the features' event rules); with
            ``prepared``, only the samples' users' rows then the extra events, item-side
            lookups reading the prepared index.
        prepared: the prepared index, or None.

    Returns:
        ``[N, D]`` float64.
    """
    if samples.height == 0:
        names = dense_feature_names(
            config,
            impressions=state.has_impressions,
            created_at=state.item_created_at is not None,
        )
        return np.zeros((0, len(names) + len(state.evidence)))
    if isinstance(log, pl.DataFrame):
        log = LogArrays.of(log, EventRules.of(config, state.positive_events))
    engine = _AGGREGATES.get() if prepared is None else None
    computed = None if engine is None else engine(config, state, samples, log)
    cols = (
        _aggregates(config, state, samples, log, prepared) if computed is None else list(computed.T)
    )
    evidence = read_evidence(samples, state.evidence)
    # Written into one matrix: column_stack then a float64 copy held three [N, D] copies.
    out = np.empty((samples.height, len(cols) + evidence.shape[0]), dtype=np.float64)
    for j, column in enumerate(cols):
        out[:, j] = column
    out[:, len(cols) :] = evidence.T
    return out


def _aggregates(
    config: PointInTimeConfig,
    state: FittedState,
    samples: pl.DataFrame,
    log: LogArrays,
    prepared: PreparedLog | None,
) -> list[NDArray[np.float64]]:
    """The aggregate columns computed here, by the sorted-code lookups."""
    x = StatInputs.build(config, state, samples, log, prepared)
    cols, user_positives = user_columns(x)
    cols += item_columns(x)
    if state.item_created_at is not None:
        cols.append(item_age_column(x, state.item_created_at))
    cols += user_category_columns(x, user_positives)
    cols += user_item_columns(x)
    return cols
