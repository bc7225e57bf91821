"""The ``train`` command's parts: where the channels fit (numba or Spark), the relaunch under
torchrun for ``--workers``, and rank 0's fit-and-report."""

from __future__ import annotations

import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from funnelrec.cli.common import console, guard, progress
from funnelrec.cli.tracking import open_tracker

if TYPE_CHECKING:
    from funnelrec.config.experiment import ExperimentConfig
    from funnelrec.spark.options import SparkOptions


class Engine(StrEnum):
    """Where ``train`` fits the ItemCF / Swing channels."""

    NUMBA = "numba"
    SPARK = "spark"


def run_under_torchrun(workers: int) -> int:
    """Run this very command line again as ``workers`` torchrun processes; their exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(workers), "-m", "funnelrec", *sys.argv[1:]]
    return subprocess.run(command, check=False).returncode


def train_and_report(
    data: Path,
    out: Path,
    cfg: ExperimentConfig,
    spark: SparkOptions | None,
    track: bool | None,
    track_uri: str | None,
) -> None:
    """``train`` on rank 0 (or alone): fit, write the artifacts, print the summary."""
    from funnelrec.cli.tracking import track_train
    from funnelrec.pipeline.production import train_dir

    tracker = guard(lambda: open_tracker(cfg.tracking, track, track_uri, out))
    with progress() as update:
        result = guard(lambda: train_dir(data, out, cfg, update, spark=spark))
    summary = result.summary
    console.print(
        f"trained on {summary['interactions']:,} rows ({summary['users']:,} users, "
        f"{summary['items']:,} items) as of {summary['as_of']}; channels "
        f"{', '.join(summary['channels'])}; ranker {summary['ranker'] or 'off'}",
        highlight=False,
    )
    for name, reason in summary["skipped_channels"].items():
        console.print(f"  skipped channel {name}: {reason}", highlight=False)
    if summary["ranker_skipped"]:
        console.print(f"  skipped the ranker: {summary['ranker_skipped']}", highlight=False)
    console.print(f"artifacts: {out} (self-check passed on {summary['self_check_requests']})")
    if tracker is not None:
        console.print(guard(lambda: track_train(tracker, out, cfg, summary)), highlight=False)
