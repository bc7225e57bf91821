"""The ``--track`` / ``--track-uri`` options of run, train and experiment: open the MLflow store
before the work (a bad URI fails at once), record the finished run after it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.config.tracking import TrackingConfig

if TYPE_CHECKING:  # funnelrec.tracking.mlflow_store is imported only when tracking is on
    from funnelrec.tracking.mlflow_store import MlflowTracker, RunRecord

TrackOpt = Annotated[
    bool | None,
    typer.Option(
        "--track/--no-track",
        show_default=False,
        help="Record params, metrics, plots and artifacts in MLflow (default: tracking.mlflow "
        "in the config, off); the store is mlruns/ beside --out unless --track-uri says.",
    ),
]
TrackUriOpt = Annotated[
    str | None,
    typer.Option(
        "--track-uri",
        show_default=False,
        help="MLflow tracking URI (sqlite:///PATH, http://HOST:PORT) or a store folder; "
        "implies --track.",
    ),
]


def open_tracker(
    settings: TrackingConfig, track: bool | None, uri: str | None, out: Path
) -> MlflowTracker | None:
    """The MLflow store this command records into, or None when tracking is off."""
    if track is False or (track is None and uri is None and not settings.mlflow):
        return None
    from funnelrec.tracking.mlflow_store import MlflowTracker, resolve_target

    return MlflowTracker(resolve_target(settings, uri, out))


def record(tracker: MlflowTracker, run: RunRecord) -> str:
    """Log ``run``; the line the command prints about it."""
    run_id = tracker.log(run)
    return (
        f"tracked: MLflow run {run_id} in experiment '{tracker.target.experiment}' "
        f"at {tracker.target.uri}"
    )


def track_run(
    tracker: MlflowTracker, out: Path, config: ExperimentConfig, metrics: dict[str, Any]
) -> str:
    """``funnelrec run``: render the report first (its plots are what a reader of the MLflow
    run looks at), then record the run."""
    from funnelrec.eval.report import write_report
    from funnelrec.tracking.records import run_record

    report = write_report(out).parent
    return record(tracker, run_record(out, config, metrics, report))


def track_train(
    tracker: MlflowTracker, out: Path, config: ExperimentConfig, summary: dict[str, Any]
) -> str:
    from funnelrec.tracking.records import train_record

    return record(tracker, train_record(out, config, summary))


def track_experiment(
    tracker: MlflowTracker, out: Path, arms: dict[str, ExperimentConfig], decision: str, why: str
) -> str:
    from funnelrec.tracking.records import experiment_record

    return record(tracker, experiment_record(out, arms, decision, why))


__all__ = [
    "TrackOpt",
    "TrackUriOpt",
    "open_tracker",
    "record",
    "track_experiment",
    "track_run",
    "track_train",
]
