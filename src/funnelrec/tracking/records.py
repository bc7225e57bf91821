"""What ``run``, ``train`` and ``experiment`` record: one :class:`RunRecord` each, built from
what the command wrote to its output folder (so the record and the folder cannot disagree).

Every record carries ``config.json`` (the resolved config) at the root of its artifacts, and a
``run`` record its ``metrics.json``: ``funnelrec compare`` reads a tracked run back from them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.tracking.flatten import flat_metrics, flat_params, text_tags
from funnelrec.tracking.mlflow_store import RunRecord, run_tags

# The artifact folder's small files, copied when the whole folder is not (log_artifacts off).
ARTIFACT_SUMMARY = ("manifest.json", "config.json", "train_summary.json")


def config_params(config: ExperimentConfig) -> dict[str, str]:
    """The resolved config as params, without ``tracking.*`` (where the run was recorded is
    not a setting of the run)."""
    tree = config.model_dump(mode="json", exclude={"tracking"})
    return flat_params(tree)


def _artifact_files(
    artifacts: Path, config: ExperimentConfig
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(files, folders) to copy of an artifact folder: all of it, or its small files."""
    if not artifacts.is_dir():
        return [], []
    if config.tracking.log_artifacts:
        return [], [(artifacts, "artifacts")]
    small = [(artifacts / name, "artifacts") for name in ARTIFACT_SUMMARY]
    return [f for f in small if f[0].is_file()], []


def run_record(
    out: Path, config: ExperimentConfig, metrics: Mapping[str, Any], report: Path | None
) -> RunRecord:
    """``funnelrec run``: params, every metric of metrics.json (the funnel table per stage,
    the guards, the intervals), the report and its plots, and the artifact folder."""
    out = Path(out)
    files, folders = _artifact_files(out / "artifacts", config)
    if report is not None and report.is_dir():
        folders.append((report, "report"))
    return RunRecord(
        name=out.resolve().name,
        params=config_params(config),
        metrics=flat_metrics(metrics),
        tags=run_tags("run", out, text_tags(metrics)),
        files=[(out / "metrics.json", ""), *files],
        folders=folders,
        documents={"config.json": config.model_dump(mode="json")},
    )


def train_record(out: Path, config: ExperimentConfig, summary: Mapping[str, Any]) -> RunRecord:
    """``funnelrec train``: params, the summary's counts, guards and timings, the artifact."""
    out = Path(out)
    files, folders = _artifact_files(out, config)
    return RunRecord(
        name=out.resolve().name,
        params=config_params(config),
        metrics=flat_metrics(summary),
        tags=run_tags("train", out, text_tags(summary)),
        files=files,
        folders=folders,
        documents={"config.json": config.model_dump(mode="json")},
    )


def experiment_record(
    out: Path, arms: Mapping[str, ExperimentConfig], decision: str, reason: str
) -> RunRecord:
    """``funnelrec experiment``: both arms' configs (``control.*``, ``treatment.*``), the
    analysis (analysis.json) as metrics, the decision, and the folder (report, plots, table)."""
    out = Path(out)
    params = {
        f"{arm}.{key}": value
        for arm, config in arms.items()
        for key, value in config_params(config).items()
    }
    analysis_path = out / "analysis.json"
    analysis = json.loads(analysis_path.read_text()) if analysis_path.is_file() else {}
    tags = {"funnelrec.decision": decision, "funnelrec.reason": reason[:5000]}
    return RunRecord(
        name=out.resolve().name,
        params=params,
        metrics=flat_metrics(analysis),
        tags=run_tags("experiment", out, tags),
        folders=[(out, "")],
        documents={f"config_{arm}.json": c.model_dump(mode="json") for arm, c in arms.items()},
    )


__all__ = ["config_params", "experiment_record", "run_record", "train_record"]
