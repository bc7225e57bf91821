"""Two runs' metrics, intervals, settings and guards side by side; bad run folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from funnelrec.errors import FunnelrecError
from funnelrec.tracking.compare import (
    Estimate,
    MetricDiff,
    RunSnapshot,
    compare_runs,
    config_changes,
    load_run_dir,
)
from funnelrec.tracking.compare_render import is_unchanged, metric_cells, write_html
from support.report_html import assert_readable_report


def metrics(ndcg: float, span: list[float], kept: bool) -> dict[str, Any]:
    return {
        "recall": {
            "merged": {"recall@10": 0.25, "ndcg@10": 0.15, "recall@200": 0.8},
            "reranked": {"recall@10": 0.22, "ndcg@10": ndcg},
        },
        "intervals": {
            "final": "reranked",
            "lists": {"reranked": {"ndcg@10": span}, "merged": {"ndcg@10": [0.12, 0.18]}},
            "paired": {"merged": {"ndcg@10": {"mean": ndcg - 0.15, "low": -0.01, "high": 0.02}}},
        },
        "funnel": {"k": 10, "stages": [{"stage": "rank", "candidates": 100, "ndcg@10": ndcg}]},
        "guards": [{"stage": "rerank", "kept": kept}],
        "rank": {"click": {"auc": 0.72, "auc_low": 0.68, "auc_high": 0.76, "gauc": 0.75}},
        "latency_ms": {"total": {"p50": 84.8179, "p99": 239.4823}},
    }


def snapshot(label: str, ndcg: float, span: list[float], kept: bool, method: str) -> RunSnapshot:
    config = {"rerank": {"method": method, "theta": 0.95}, "tracking": {"mlflow": kept}}
    return RunSnapshot(label, metrics(ndcg, span, kept), config)


def test_changed_metrics_settings_and_guards_are_listed() -> None:
    a = snapshot("a", 0.158, [0.12, 0.20], True, "dpp")
    b = snapshot("b", 0.250, [0.21, 0.29], False, "mmr")
    comparison = compare_runs(a, b)
    assert comparison.settings == [("rerank.method", "dpp", "mmr")]  # tracking.* left out
    assert comparison.guards == [("rerank", "kept", "bypassed")]
    rows = {(r.group, r.name): r for r in comparison.metrics}
    ndcg = rows["lists", "reranked ndcg@10"]
    assert ndcg.difference == pytest.approx(0.092) and ndcg.overlap is False
    assert rows["lists", "merged ndcg@10"].overlap is True
    assert rows["lists", "merged recall@200"].b is not None
    assert rows["lists", "reranked recall@10"].a == Estimate(0.22)  # no interval measured
    paired = rows["paired", "reranked - merged ndcg@10"].a
    assert paired is not None and (paired.low, paired.high) == (-0.01, 0.02)
    assert paired.value == pytest.approx(0.008)
    assert rows["rank", "click auc"].a == Estimate(0.72, 0.68, 0.76)
    assert ("funnel", "rank ndcg@10") in rows and ("latency", "total p99 ms") in rows
    assert [r.group for r in comparison.metrics] == sorted(
        (r.group for r in comparison.metrics),
        key=["lists", "paired", "funnel", "rank", "latency"].index,
    )


def test_a_metric_one_run_lacks_is_a_dash() -> None:
    row = MetricDiff("lists", "two_tower recall@10", Estimate(0.1, 0.05, 0.15), None)
    cells = metric_cells(row)
    assert cells["A"] == "0.1 [0.05, 0.15]" and not is_unchanged(row)
    assert cells["B"] == cells["B - A"] == cells["intervals overlap"] == "-"
    cells = metric_cells(MetricDiff("x", "y", Estimate(0.123456), Estimate(0.2)))
    assert cells["B - A"] == "+0.07654" and cells["A"] == "0.1235"
    assert is_unchanged(MetricDiff("x", "y", Estimate(0.2, 0.1, 0.3), Estimate(0.2, 0.1, 0.3)))
    assert not is_unchanged(MetricDiff("x", "y", Estimate(0.2, 0.1, 0.3), Estimate(0.2)))


def test_everything_lists_every_metric_at_every_k() -> None:
    a = snapshot("a", 0.158, [0.12, 0.20], True, "dpp")
    names = {r.name for r in compare_runs(a, a, everything=True).metrics}
    assert "merged recall@200" in names and "reranked recall@10" in names
    assert "merged ndcg@200" not in names  # not measured


def test_settings_are_not_compared_without_a_config() -> None:
    assert config_changes(None, {"a": 1}) == []
    assert config_changes({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == [("a.c", None, "2")]


def test_the_html_page_reads_well(tmp_path: Path) -> None:
    a = snapshot("runs/a", 0.158123456, [0.12, 0.20], True, "dpp")
    b = snapshot("runs/b", 0.250987654, [0.21, 0.29], False, "mmr")
    page = write_html(compare_runs(a, b), tmp_path / "out" / "compare.html").read_text()
    assert_readable_report(page)
    assert "<td>rerank.method</td><td>dpp</td><td>mmr</td>" in page
    assert "<td>+0.09286</td>" in page and "<td>no</td>" in page


def test_a_run_folder_is_read_with_its_config(tmp_path: Path) -> None:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(0.1, [0.0, 0.2], True)))
    (tmp_path / "artifacts" / "config.json").write_text(json.dumps({"seed": 1}))
    run = load_run_dir(tmp_path)
    assert run.config == {"seed": 1} and run.label == str(tmp_path)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such run folder"),
        ("empty", "not a run folder (no metrics.json"),
        ("file", "not a run folder"),
        ("bad_json", "not valid JSON"),
        ("list_json", "not a metrics"),
    ],
)
def test_what_is_not_a_run_folder_says_why(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "run"
    if setup == "file":
        path.write_text("x")
    elif setup != "missing":
        path.mkdir()
    if setup == "bad_json":
        (path / "metrics.json").write_text("{")
    if setup == "list_json":
        (path / "metrics.json").write_text("[]")
    with pytest.raises(FunnelrecError, match=message.replace("(", r"\(")):
        load_run_dir(path)
