"""The Spark engine: ItemCF / Swing / popularity channels whose fit runs on Spark, and the
channel fitter ``fit_funnel`` uses instead of the single-machine fit.

:class:`SparkItemCF`, :class:`SparkSwing` and :class:`SparkPopular` differ from their
single-machine parents only in ``_fit``; their state is the parents' (``neighbor_idx`` /
``neighbor_sim``; ``item_score`` / ``item_category``), and a loaded artifact rebuilds the
parent class from it, so serving never sees Spark.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.log import LogArrays
from funnelrec.features.pit.state import FittedState
from funnelrec.recall.base import Retriever, RetrieverBase
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.model import ItemCF
from funnelrec.recall.popular import Popular, PopularConfig
from funnelrec.recall.registry import ChannelConfig, build_retriever, warm_started
from funnelrec.recall.swing.config import SwingConfig
from funnelrec.recall.swing.model import Swing
from funnelrec.spark.frames import spark_positives
from funnelrec.spark.itemcf import fit_itemcf_arrays
from funnelrec.spark.options import SparkOptions
from funnelrec.spark.pit_stats import aggregate_features
from funnelrec.spark.popularity import item_popularity
from funnelrec.spark.session import start_session
from funnelrec.spark.swing import fit_swing_arrays

if TYPE_CHECKING:
    import polars as pl
    from numpy.typing import NDArray
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

AGGREGATES_MIN_SAMPLES = 50_000
"""Batches of fewer samples get their point-in-time aggregates on this machine: a Spark job's
fixed cost (staging, ten window jobs, ~40 s on local[2]) is far above the lookups' at that size
(``benchmarks/spark_pit_stats.py``). The ranker's training samples (up to
``rank.samples.max_train_samples``) are the batches that go to Spark."""


class SparkEngine:
    """A Spark session plus where the positives come from.

    Args:
        session: the running session.
        options: the engine's settings (``interactions``: Parquet Spark may read itself).
        source_data: the Dataset built from ``options.interactions``; only fits on this very
            Dataset read the source (others, e.g. the recall-tuning window's earlier part,
            are staged from the driver).
    """

    def __init__(
        self, session: SparkSession, options: SparkOptions, source_data: Dataset | None = None
    ) -> None:
        self.session = session
        self.options = options
        self.source_data = source_data
        self._staging = Path(tempfile.mkdtemp(prefix="funnelrec-spark-", dir=options.staging_dir))
        self._last: tuple[Dataset, DataFrame] | None = None

    @property
    def staging(self) -> Path:
        """The engine's own staging folder (under ``options.staging_dir``): Parquet in and out
        of the jobs, removed by :meth:`close`."""
        return self._staging

    def positives(self, data: Dataset) -> DataFrame:
        """``data``'s positives as ``(u, i, t)`` on Spark (the last one is reused, so ItemCF
        and Swing fitted on one Dataset read it once)."""
        if self._last is not None and self._last[0] is data:
            return self._last[1]
        source = self.options.interactions if data is self.source_data else None
        frame = spark_positives(self.session, data, source, self._staging)
        self._last = (data, frame)
        return frame

    def fit_channel(
        self,
        config: ChannelConfig,
        data: Dataset,
        rng: np.random.Generator,
        earlier: Retriever | None = None,
    ) -> Retriever:
        """Fit one recall channel: ItemCF, Swing and popularity on Spark (from scratch), the
        others as usual (warm-started from ``earlier`` where they can be)."""
        # RetrieverBase: the parents' from_state return types keep mypy from seeing a Retriever.
        model: RetrieverBase
        if isinstance(config, PopularConfig):
            model = SparkPopular(config, self)
        elif isinstance(config, SwingConfig):
            model = SparkSwing(config, self)
        elif isinstance(config, ItemCFConfig):
            model = SparkItemCF(config, self)
        else:
            return warm_started(build_retriever(config), earlier).fit(data, rng=rng)
        return _fitted(model, data, rng)

    def aggregates(
        self, config: PointInTimeConfig, state: FittedState, samples: pl.DataFrame, log: LogArrays
    ) -> NDArray[np.float64] | None:
        """The ranker's point-in-time aggregate columns of a batch of at least
        :data:`AGGREGATES_MIN_SAMPLES` samples, computed on Spark (the
        :data:`~funnelrec.features.pit.dense.AggregateEngine` of ``train --engine spark``);
        None for smaller batches (computed locally)."""
        if samples.height < AGGREGATES_MIN_SAMPLES:
            return None
        logger.info("spark: point-in-time aggregates of %d samples", samples.height)
        return aggregate_features(self.session, config, state, samples, log, staging=self._staging)

    def close(self) -> None:
        """Remove the staged Parquet (the session is stopped by :func:`spark_engine`)."""
        self._last = None
        shutil.rmtree(self._staging, ignore_errors=True)


@contextmanager
def spark_engine(
    options: SparkOptions, source_data: Dataset | None = None
) -> Iterator[SparkEngine]:
    """A :class:`SparkEngine` for the ``with`` block; the session stops at its end."""
    session = start_session(options)
    engine = SparkEngine(session, options, source_data)
    logger.info("spark engine on %s (Spark %s)", options.master, session.version)
    try:
        yield engine
    finally:
        engine.close()
        session.stop()


class SparkItemCF(ItemCF):
    """:class:`~funnelrec.recall.itemcf.ItemCF` fitted on Spark (same weights, same state)."""

    def __init__(self, config: ItemCFConfig | None = None, engine: SparkEngine | None = None):
        super().__init__(config)
        self._engine = engine

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        del rng  # deterministic, as the numba fit
        engine = _require(self._engine)
        positives = engine.positives(data)
        idx, sim = fit_itemcf_arrays(engine.session, positives, data, self.config, engine.staging)
        self._set(idx, sim)
        self._engine = None  # a fitted channel holds arrays only (no live session)
        return self


class SparkSwing(Swing):
    """:class:`~funnelrec.recall.swing.Swing` fitted on Spark (same weights, same state)."""

    def __init__(self, config: SwingConfig | None = None, engine: SparkEngine | None = None):
        super().__init__(config)
        self._engine = engine

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        del rng
        engine = _require(self._engine)
        idx, sim = fit_swing_arrays(engine.positives(data), data, self.config, engine.staging)
        self._set(idx, sim)
        self._engine = None
        return self


class SparkPopular(Popular):
    """:class:`~funnelrec.recall.popular.Popular` with its item scores summed on Spark."""

    def __init__(self, config: PopularConfig | None = None, engine: SparkEngine | None = None):
        super().__init__(config)
        self._engine = engine

    def _fit(self, data: Dataset, *, rng: np.random.Generator) -> Self:
        del rng
        engine = _require(self._engine)
        mode = self.config.mode
        categories = data.item_categories
        if mode == "category" and categories is None:
            raise MissingInputError(
                "popular mode 'category' needs an items table with a category column"
            )
        half_life = None if mode == "global" else self.config.half_life_s
        self.item_score = item_popularity(
            engine.positives(data), data.n_items, data.as_of, half_life
        )
        self.item_category = (
            categories if categories is not None else np.full(data.n_items, -1, np.int32)
        )
        self._engine = None
        return self


def _fitted(model: RetrieverBase, data: Dataset, rng: np.random.Generator) -> Retriever:
    """``model`` fitted, typed as the Retriever it is."""
    return model.fit(data, rng=rng)


def _require(engine: Any) -> SparkEngine:
    if not isinstance(engine, SparkEngine):
        raise RuntimeError("a Spark channel fits once, with the SparkEngine it was built with")
    return engine
