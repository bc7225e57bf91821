"""``funnelrec compare RUN_A RUN_B``: what changed between two runs, as data.

A run is its ``metrics.json`` and resolved config, read from a run folder (the ``--out`` of
``funnelrec run``) or from a tracked MLflow run's files. The comparison lists the settings
that differ, the guards whose decision changed, and each headline metric of both runs with its
bootstrap interval where the run measured one.

Two runs are judged on different queries (or resampled separately), so no paired difference
*between* runs exists; what can be said is whether the two intervals overlap. Each run's own
paired differences (final list minus every other list, :mod:`funnelrec.eval.intervals`) are
compared side by side like any other interval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnelrec.errors import FunnelrecError
from funnelrec.tracking.flatten import flat_params

if TYPE_CHECKING:  # MLflow is imported only to read a tracked run
    from funnelrec.tracking.mlflow_store import MlflowTracker

_AT_K = re.compile(r"^(recall|ndcg)@(\d+)$")


@dataclass(frozen=True)
class RunSnapshot:
    """One run as compared: its label, metrics.json and resolved config (None if unknown)."""

    label: str
    metrics: dict[str, Any]
    config: dict[str, Any] | None


@dataclass(frozen=True)
class Estimate:
    """A metric's value and, when the run measured one, its interval."""

    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class MetricDiff:
    """One metric in both runs (None where a run lacks it)."""

    group: str
    name: str
    a: Estimate | None
    b: Estimate | None

    @property
    def difference(self) -> float | None:
        """B minus A."""
        return None if self.a is None or self.b is None else self.b.value - self.a.value

    @property
    def overlap(self) -> bool | None:
        """Whether the two intervals overlap; None unless both runs have one."""
        a, b = self.a, self.b
        if a is None or b is None:
            return None
        if a.low is None or a.high is None or b.low is None or b.high is None:
            return None
        return a.low <= b.high and b.low <= a.high


@dataclass(frozen=True)
class Comparison:
    """Everything ``compare`` shows: changed settings, guard decisions, metrics."""

    a: RunSnapshot
    b: RunSnapshot
    settings: list[tuple[str, str | None, str | None]]
    guards: list[tuple[str, str, str]]
    metrics: list[MetricDiff]


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise FunnelrecError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise FunnelrecError(f"{path}: not a {what} (a JSON object expected)")
    return data


def load_run_dir(path: Path, label: str | None = None) -> RunSnapshot:
    """A run folder: ``metrics.json`` and, when present, ``artifacts/config.json``.

    Raises:
        FunnelrecError: no such folder, or no metrics.json in it.
    """
    path = Path(path)
    if not path.exists():
        raise FunnelrecError(f"{path}: no such run folder")
    if not path.is_dir() or not (path / "metrics.json").is_file():
        raise FunnelrecError(f"{path}: not a run folder (no metrics.json; the --out of run)")
    config_path = path / "artifacts" / "config.json"
    config = read_json(config_path, "config") if config_path.is_file() else None
    return RunSnapshot(label or str(path), read_json(path / "metrics.json", "metrics"), config)


def load_tracked_run(tracker: MlflowTracker, run_id: str, scratch: Path) -> RunSnapshot:
    """A tracked run, from the metrics.json and config.json ``funnelrec run`` recorded.

    Raises:
        FunnelrecError: no such run in the store, or one without a metrics.json.
    """
    into = Path(scratch) / run_id
    into.mkdir(parents=True, exist_ok=True)
    metrics = tracker.download(run_id, "metrics.json", into)
    if metrics is None:
        raise FunnelrecError(f"MLflow run {run_id}: no metrics.json (not a funnelrec run)")
    config = tracker.download(run_id, "config.json", into)
    return RunSnapshot(
        f"MLflow run {run_id}",
        read_json(metrics, "metrics"),
        None if config is None else read_json(config, "config"),
    )


def config_changes(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> list[tuple[str, str | None, str | None]]:
    """``(dotted key, A's value, B's value)`` for every setting that differs (None: absent);
    ``tracking.*`` is left out (where a run was recorded is not one of its settings)."""
    if a is None or b is None:
        return []
    flat_a, flat_b = flat_params(a), flat_params(b)
    keys = sorted(set(flat_a) | set(flat_b))
    return [
        (key, flat_a.get(key), flat_b.get(key))
        for key in keys
        if flat_a.get(key) != flat_b.get(key) and not key.startswith("tracking.")
    ]


def guard_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(stage, A's decision, B's decision)`` for every guard of either run."""

    def decisions(metrics: Mapping[str, Any]) -> dict[str, str]:
        return {
            str(g.get("stage")): "kept" if g.get("kept") else "bypassed"
            for g in metrics.get("guards", []) or []
        }

    da, db = decisions(a), decisions(b)
    stages = list(dict.fromkeys([*da, *db]))
    return [(s, da.get(s, "not judged"), db.get(s, "not judged")) for s in stages]


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and value == value else None  # NaN -> None


def estimates(metrics: Mapping[str, Any], everything: bool = False) -> dict[tuple, Estimate]:
    """The run's headline metrics keyed by ``(group, name)``.

    ``lists``: recall@K / NDCG@K of every list at the funnel's K and the largest K (every K
    and metric with ``everything``), with their bootstrap intervals; ``paired``: the run's
    final list minus each other list; ``funnel``: each stage's row; ``rank``: AUC (with its
    interval), GAUC and log loss per task; ``latency``: the whole request's p50 / p99.
    """
    out: dict[tuple, Estimate] = {}
    out.update(_list_estimates(metrics, everything))
    intervals = metrics.get("intervals") or {}
    final = intervals.get("final")
    for other, values in (intervals.get("paired") or {}).items():
        for metric, p in values.items():
            mean = _number(p.get("mean"))
            if mean is not None:
                name = f"{final} - {other} {metric}"
                out["paired", name] = Estimate(mean, _number(p.get("low")), _number(p.get("high")))
    for row in (metrics.get("funnel") or {}).get("stages", []):
        for column, value in row.items():
            if column != "stage" and (number := _number(value)) is not None:
                out["funnel", f"{row.get('stage')} {column}"] = Estimate(number)
    for task, values in (metrics.get("rank") or {}).items():
        if isinstance(values, Mapping) and _number(values.get("auc")) is not None:
            auc = Estimate(
                values["auc"], _number(values.get("auc_low")), _number(values.get("auc_high"))
            )
            out["rank", f"{task} auc"] = auc
            for key in ("gauc", "logloss"):
                if (number := _number(values.get(key))) is not None:
                    out["rank", f"{task} {key}"] = Estimate(number)
    total = (metrics.get("latency_ms") or {}).get("total") or {}
    for key in ("p50", "p99"):
        if (number := _number(total.get(key))) is not None:
            out["latency", f"total {key} ms"] = Estimate(number)
    return out


def _list_estimates(metrics: Mapping[str, Any], everything: bool) -> dict[tuple, Estimate]:
    recall = metrics.get("recall") or {}
    spans = (metrics.get("intervals") or {}).get("lists") or {}
    ks = sorted({int(m.group(2)) for v in recall.values() for key in v if (m := _AT_K.match(key))})
    if not ks:
        return {}
    k_funnel = (metrics.get("funnel") or {}).get("k", ks[0])
    wanted = {f"{m}@{k}" for k in {k_funnel, ks[-1]} for m in ("recall", "ndcg")}
    out: dict[tuple, Estimate] = {}
    for name, values in recall.items():
        for metric, value in values.items():
            number = _number(value)
            if number is None or not (everything or metric in wanted):
                continue
            span = (spans.get(name) or {}).get(metric) or [None, None]
            out["lists", f"{name} {metric}"] = Estimate(number, _number(span[0]), _number(span[1]))
    return out


def compare_runs(a: RunSnapshot, b: RunSnapshot, everything: bool = False) -> Comparison:
    """Both runs' metrics side by side (in A's order, then B's extra ones)."""
    ea, eb = estimates(a.metrics, everything), estimates(b.metrics, everything)
    keys = list(dict.fromkeys([*ea, *eb]))
    order = {"lists": 0, "paired": 1, "funnel": 2, "rank": 3, "latency": 4}
    keys.sort(key=lambda key: order.get(key[0], 9))  # stable: within a group, A's order
    rows = [
        MetricDiff(group, name, ea.get((group, name)), eb.get((group, name)))
        for group, name in keys
    ]
    return Comparison(
        a,
        b,
        config_changes(a.config, b.config),
        guard_changes(a.metrics, b.metrics),
        rows,
    )


__all__ = [
    "Comparison",
    "Estimate",
    "MetricDiff",
    "RunSnapshot",
    "compare_runs",
    "config_changes",
    "estimates",
    "guard_changes",
    "load_run_dir",
    "load_tracked_run",
    "read_json",
]
