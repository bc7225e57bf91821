"""``funnelrec train``: fit the funnel on every row for production and write verified
artifacts (the same :func:`fit_funnel` evaluation uses, without a split)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.io import RawTables, load_dataset_dir
from funnelrec.pipeline.fit import FitReport, ProgressFn, fit_funnel
from funnelrec.pipeline.golden import self_check
from funnelrec.pipeline.persist import load_with_golden, save_recommender

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
) -> TrainResult:
    """Fit on every row of ``tables`` and write artifacts to ``out_dir``, then load them back
    and run the golden self-check (what ``serve`` and ``recommend`` will do), so an artifact
    that does not reproduce itself is never handed on.

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
    recommender, report = fit_funnel(config, data, rng, work_dir=out_dir.parent, progress=progress)
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


def train_dir(
    data_dir: Path, out_dir: Path, config: ExperimentConfig, progress: ProgressFn | None = None
) -> TrainResult:
    """``funnelrec train``: canonical tables from ``data_dir`` (validated) -> artifacts."""
    return train_tables(load_dataset_dir(Path(data_dir)), out_dir, config, progress)
