"""Recording a finished run in MLflow, and reading one back (``funnelrec compare RUN_ID``).

The embedded default is a folder holding a SQLite database (``mlflow.db``) and the runs' files
(``artifacts/``): no server. MLflow 3.x no longer opens its old ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE`` is set and names SQLite as the default backend; a SQLite file
needs nothing running and ``mlflow ui --backend-store-uri sqlite:///...`` opens it.

MLflow is imported here only, and only when a command turns tracking on. Its usage telemetry
is switched off before the import: nothing a run does may reach the network unless the user
points ``--track`` at a server.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnelrec.config.tracking import TrackingConfig
from funnelrec.errors import FunnelrecError

STORE_FOLDER = "mlruns"
DATABASE = "mlflow.db"
# Set before MLflow is imported: its telemetry client reads them once, at import.
OFFLINE_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# MLflow's per-request limits of log_batch (mlflow.utils.validation).
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100


class TrackingError(FunnelrecError):
    """The tracking store cannot be opened or written (a bad URI, an unknown run id)."""


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go: the tracking URI, where a new experiment keeps its files, its name."""

    uri: str
    artifact_location: str | None
    experiment: str


@dataclass
class RunRecord:
    """What one command hands to MLflow: params, metrics, tags and files to copy.

    ``files`` / ``folders``: ``(local path, folder inside the run's artifacts, "" = root)``;
    ``documents``: JSON documents written as files (``{artifact path: content}``).
    """

    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: list[tuple[Path, str]] = field(default_factory=list)
    folders: list[tuple[Path, str]] = field(default_factory=list)
    documents: dict[str, Any] = field(default_factory=dict)


def store_target(location: str, experiment: str) -> TrackingTarget:
    """A URI (``sqlite:///...``, ``http://...``) as is, or a folder as the embedded store.

    Example:
        >>> store_target("/tmp/runs/mlruns", "x").uri
        'sqlite:////tmp/runs/mlruns/mlflow.db'
    """
    if "://" in location:
        db = location.removeprefix("sqlite:///") if location.startswith("sqlite:///") else None
        # A SQLite store keeps its files beside the database, not in the working directory.
        files = (Path(db).resolve().parent / "artifacts").as_uri() if db else None
        return TrackingTarget(location, files, experiment)
    folder = Path(location).expanduser().resolve()
    artifacts = (folder / "artifacts").as_uri()
    return TrackingTarget(f"sqlite:///{folder / DATABASE}", artifacts, experiment)


def resolve_target(settings: TrackingConfig, uri: str | None, out: Path) -> TrackingTarget:
    """Where a command's run is recorded: ``uri`` (the ``--track-uri`` option), else the
    config's ``tracking.uri``, else ``mlruns/`` beside ``out``, so sibling runs share a store.
    """
    location = uri or settings.uri or str(Path(out).expanduser().resolve().parent / STORE_FOLDER)
    return store_target(location, settings.experiment)


def _import_mlflow() -> Any:
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ[name] = value
    import mlflow

    # Creating the SQLite tables logs a line per migration step at INFO.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


@contextmanager
def _one_line_errors(target: TrackingTarget) -> Iterator[None]:
    """MLflow's exceptions (a bad URI, a locked database) as one line for the user."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as e:
        first = str(e.message).strip().splitlines()[0] if str(e.message).strip() else repr(e)
        raise TrackingError(f"tracking at {target.uri}: {first}") from None


class MlflowTracker:
    """An open MLflow store with this command's experiment in it.

    Opened before the work starts (a bad URI fails in seconds, not after an hour's run) and
    asked to :meth:`log` the finished run.
    """

    def __init__(self, target: TrackingTarget) -> None:
        mlflow = _import_mlflow()
        self.target = target
        with _one_line_errors(target):
            self._client = mlflow.tracking.MlflowClient(tracking_uri=target.uri)
            self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self._client.get_experiment_by_name(self.target.experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(
                self._client.create_experiment(
                    self.target.experiment, artifact_location=self.target.artifact_location
                )
            )
        except MlflowException:  # created meanwhile by a run beside this one
            found = self._client.get_experiment_by_name(self.target.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    def log(self, record: RunRecord) -> str:
        """Record a finished run; returns its MLflow run id. A failure part-way marks the
        MLflow run FAILED (never left RUNNING) and raises :class:`TrackingError`."""
        with _one_line_errors(self.target):
            run = self._client.create_run(self.experiment_id, run_name=record.name)
            run_id = str(run.info.run_id)
            try:
                self._write(run_id, record)
            except BaseException:
                self._client.set_terminated(run_id, status="FAILED")
                raise
            self._client.set_terminated(run_id, status="FINISHED")
        return run_id

    def _write(self, run_id: str, record: RunRecord) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in record.params.items()]
        metrics = [Metric(k, v, now, 0) for k, v in record.metrics.items()]
        tags = [RunTag(k, v) for k, v in record.tags.items()]
        for start in range(0, len(params), BATCH_PARAMS):
            self._client.log_batch(run_id, params=params[start : start + BATCH_PARAMS])
        for start in range(0, len(metrics), BATCH_METRICS):
            self._client.log_batch(run_id, metrics=metrics[start : start + BATCH_METRICS])
        for start in range(0, len(tags), BATCH_TAGS):
            self._client.log_batch(run_id, tags=tags[start : start + BATCH_TAGS])
        for path, folder in record.files:
            self._client.log_artifact(run_id, str(path), folder or None)
        for path, folder in record.folders:
            self._client.log_artifacts(run_id, str(path), folder or None)
        for name, document in record.documents.items():
            self._client.log_dict(run_id, document, name)

    def download(self, run_id: str, artifact: str, into: Path) -> Path | None:
        """One file of a run's artifacts, or None when the run has no such file.

        Raises:
            TrackingError: no run with this id in the store.
        """
        from mlflow.exceptions import MlflowException

        with _one_line_errors(self.target):
            self._client.get_run(run_id)  # an unknown id is the user's error, said as such
        try:
            local = self._client.download_artifacts(run_id, artifact, str(into))
        except (MlflowException, OSError):
            return None
        return Path(local)


def run_tags(command: str, out: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Tags every tracked run carries: the command, its output folder, MLflow's source."""
    return {
        "funnelrec.command": command,
        "funnelrec.out": str(Path(out).resolve()),
        "mlflow.source.name": f"funnelrec {command}",
        "mlflow.source.type": "LOCAL",
        **(extra or {}),
    }


__all__ = [
    "DATABASE",
    "STORE_FOLDER",
    "MlflowTracker",
    "RunRecord",
    "TrackingError",
    "TrackingTarget",
    "resolve_target",
    "run_tags",
    "store_target",
]
