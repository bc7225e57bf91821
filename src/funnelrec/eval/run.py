"""``funnelrec run``/``demo`` as library functions: load, evaluate, write metrics and artifacts."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.io import RawTables, load_dataset_dir, write_tables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.eval.position_bias import position_bias_report
from funnelrec.eval.protocol import run_experiment
from funnelrec.pipeline.fit import ProgressFn
from funnelrec.pipeline.persist import save_recommender

logger = logging.getLogger(__name__)


def run_tables(
    tables: RawTables, out_dir: Path, config: ExperimentConfig, progress: ProgressFn | None = None
) -> dict:
    """Evaluate ``config`` on ``tables``; write metrics.json and artifacts/ under ``out_dir``.

    A run that fails removes ``out_dir`` again when it created it, so that a half-written
    folder is never mistaken for results.
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run_into(tables, out_dir, config, progress)
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _run_into(
    tables: RawTables, out_dir: Path, config: ExperimentConfig, progress: ProgressFn | None
) -> dict:
    result = run_experiment(
        tables.interactions, tables.items, tables.users, config, progress, work_dir=out_dir
    )
    metrics = result.metrics
    metrics["data"]["dropped_rows"] = {
        f"{r.table}:{reason}": count for r in tables.reports for reason, count in r.dropped.items()
    }
    if config.eval.position_bias:
        metrics["position_bias"] = position_bias_report(tables.interactions)
    save_recommender(result.recommender, out_dir / "artifacts")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("wrote %s", out_dir / "metrics.json")
    return metrics


def run_dir(
    data_dir: Path, out_dir: Path, config: ExperimentConfig, progress: ProgressFn | None = None
) -> dict:
    """``funnelrec run``: canonical tables from ``data_dir`` (validated) -> metrics + artifacts."""
    return run_tables(load_dataset_dir(Path(data_dir)), out_dir, config, progress)


def run_demo(
    out_dir: Path,
    n_interactions: int,
    seed: int,
    config: ExperimentConfig,
    progress: ProgressFn | None = None,
) -> dict:
    """``funnelrec demo``: simulate, save the data beside the results, run the funnel on it."""
    out_dir = Path(out_dir)
    sim = simulate(SimulatorConfig.for_interactions(n_interactions, seed=seed))
    tables = RawTables(sim.interactions, sim.items, sim.users, ())
    write_tables(tables, out_dir / "data")
    return run_tables(tables, out_dir, config, progress)
