"""Where a run is recorded besides its output folder: MLflow (docs/tracking.md).

Plain pydantic, no MLflow import: reading a config must stay cheap (the serve workers and
``import funnelrec.config`` never load MLflow; funnelrec.tracking imports it only when on).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrackingConfig(BaseModel):
    """``[tracking]``: off by default, so a run writes nothing outside its ``--out``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: bool = Field(
        False,
        description="Record params (the resolved config), metrics, plots and the artifact "
        "folder of run / train / experiment in MLflow (also: the --track option).",
    )
    uri: str | None = Field(
        None,
        description="An MLflow tracking URI (sqlite:///PATH, http://HOST:PORT) or a folder "
        "that holds mlflow.db and artifacts/. None: the folder mlruns/ beside --out, so "
        "sibling runs (runs/a, runs/b) share one store.",
    )
    experiment: str = Field(
        "funnelrec", min_length=1, description="The MLflow experiment the runs are filed under."
    )
    log_artifacts: bool = Field(
        True,
        description="Copy the fitted artifact folder into the run (it can be hundreds of MB; "
        "off: only its manifest and config are copied).",
    )
