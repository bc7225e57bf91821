"""``funnelrec train``: fit the funnel on every row for production and write verified
artifacts (the same :func:`fit_funnel` evaluation uses, without a split)."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.io import RawTables, load_dataset_dir
from funnelrec.features.pit.dense import aggregate_engine
from funnelrec.pipeline.fit import FitReport, ProgressFn, fit_funnel
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.golden import self_check
from funnelrec.pipeline.persist import load_with_golden, save_recommender
from funnelrec.pipeline.recall_fit import channel_fitter
from funnelrec.spark.options import SparkOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_tables` wrote: the artifact folder, its summary and the fit report."""

    artifacts: Path
    summary: dict[str, Any]
    report: FitReport


def train_tables(
    tables: RawTables,
    out_dir: Path,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
    *,
    spark: SparkOptions | None = None,
) -> TrainResult:
    """Fit on every row of ``tables`` and write artifacts to ``out_dir``, then load them back
    and run the golden self-check (what ``serve`` and ``recommend`` will do), so an artifact
    that does not reproduce itself is never handed on.

    With ``spark`` the ItemCF and Swing channels are fitted on Spark (:mod:`funnelrec.spark`),
    everything else as usual; the artifacts are the same either way.

    Raises:
        SelfCheckError: the written artifact does not reproduce its golden set.
    """
    out_dir = Path(out_dir)
    data = Dataset.build(
        tables.interactions,
        tables.items,
        tables.users,
        positive_events=config.data.positive_events,
    )
    rng = np.random.default_rng(config.seed)
    recommender, report = _fit(config, data, rng, out_dir.parent, progress, spark)
    save_recommender(recommender, out_dir)
    loaded, golden = load_with_golden(out_dir)
    assert golden is not None  # save_recommender always records one
    check = self_check(loaded, golden)
    summary = {
        "artifacts": str(out_dir),
        "as_of": recommender.as_of,
        "interactions": data.interactions.height,
        "positives": data.positives.height,
        "users": data.n_users,
        "items": data.n_items,
        "channels": sorted(recommender.channels),
        "engine": "numba" if spark is None else f"spark ({spark.master})",
        "skipped_channels": dict(report.skipped),
        "ranker": None if recommender.ranker is None else recommender.ranker.config.model.kind,
        "ranker_skipped": report.rank_skipped,
        "guards": [d.as_dict() for d in report.guards],
        "self_check_requests": check.requests,
        "dropped_rows": {
            f"{r.table}:{reason}": n for r in tables.reports for reason, n in r.dropped.items()
        },
        "timings_s": {k: round(v, 4) for k, v in report.timings_s.items()},
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    logger.info("wrote %s", out_dir)
    return TrainResult(out_dir, summary, report)


def _fit(
    config: ExperimentConfig,
    data: Dataset,
    rng: np.random.Generator,
    work_dir: Path,
    progress: ProgressFn | None,
    spark: SparkOptions | None,
) -> tuple[Funnel, FitReport]:
    """:func:`fit_funnel`, with every ItemCF / Swing / popularity fit and the ranker's
    point-in-time aggregates of large batches on Spark when ``spark`` is given."""
    if spark is None:
        return fit_funnel(config, data, rng, work_dir=work_dir, progress=progress)
    from funnelrec.spark.engine import spark_engine  # pyspark is loaded only when asked for

    with (
        spark_engine(spark, source_data=data) as engine,
        channel_fitter(engine.fit_channel),
        aggregate_engine(engine.aggregates),
    ):
        return fit_funnel(config, data, rng, work_dir=work_dir, progress=progress)


def interactions_source(data_dir: Path) -> Path | None:
    """The data folder's interactions as Spark can read them: the hive-partitioned
    ``interactions/`` folder or ``interactions.parquet``; None for CSV (staged instead)."""
    for candidate in (data_dir / "interactions", data_dir / "interactions.parquet"):
        if candidate.exists():
            return candidate
    return None


def train_dir(
    data_dir: Path,
    out_dir: Path,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
    *,
    spark: SparkOptions | None = None,
) -> TrainResult:
    """``funnelrec train``: canonical tables from ``data_dir`` (validated) -> artifacts.

    With ``spark``, Spark reads the folder's Parquet interactions itself (when they match the
    validated rows; :func:`funnelrec.spark.frames.spark_positives`).
    """
    data_dir = Path(data_dir)
    if spark is not None and spark.interactions is None:
        spark = dataclasses.replace(spark, interactions=interactions_source(data_dir))
    return train_tables(load_dataset_dir(data_dir), out_dir, config, progress, spark=spark)
