"""A :class:`~funnelrec.tracking.compare.Comparison` as table cells (the terminal and the page
write numbers the same way, :mod:`funnelrec.eval.html`) and as one self-contained HTML page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from funnelrec.eval.html import (
    MISSING,
    TABLE_STYLE,
    format_interval,
    format_number,
    html_table,
)
from funnelrec.tracking.compare import Comparison, Estimate, MetricDiff

GROUP_TITLES = {
    "lists": "Lists: recall and NDCG (bootstrap intervals over the held-out queries)",
    "paired": "Each run's paired difference: the final list minus every other list",
    "funnel": "Funnel, stage by stage",
    "rank": "Ranker per task (AUC with its interval)",
    "latency": "Latency of a single-user request",
}
STYLE = TABLE_STYLE
NOTE = (
    "a dash: the run did not measure this (no interval: a point value; no value: the metric "
    "is absent from that run)"
)


def signed(value: float) -> str:
    """A difference with its sign: ``+0.0123``, ``-4``, ``0``."""
    text = format_number(value)
    return f"+{text}" if value > 0 else text


def _value(estimate: Estimate | None) -> str:
    """``0.1565 [0.09373, 0.2284]``: the value and, when measured, its interval."""
    if estimate is None:
        return MISSING
    if estimate.low is None or estimate.high is None:
        return format_number(estimate.value)
    return f"{format_number(estimate.value)} {format_interval(estimate.low, estimate.high)}"


def metric_cells(row: MetricDiff) -> dict[str, str]:
    """The row as text: both values with their intervals, B - A, whether the intervals
    overlap ("no" is the row a reader looks at first)."""
    difference = row.difference
    overlap = row.overlap
    return {
        "metric": row.name,
        "A": _value(row.a),
        "B": _value(row.b),
        "B - A": MISSING if difference is None else signed(difference),
        "intervals overlap": MISSING if overlap is None else ("yes" if overlap else "no"),
    }


def is_unchanged(row: MetricDiff) -> bool:
    """Both runs have the metric and agree on it, interval included."""
    return row.a is not None and row.a == row.b


def grouped_rows(
    comparison: Comparison, changed_only: bool = False
) -> dict[str, list[dict[str, str]]]:
    """The metric rows as cells, by group (in the comparison's order)."""
    groups: dict[str, list[dict[str, str]]] = {}
    for row in comparison.metrics:
        if not (changed_only and is_unchanged(row)):
            groups.setdefault(row.group, []).append(metric_cells(row))
    return groups


def setting_rows(comparison: Comparison) -> list[dict[str, Any]]:
    return [
        {
            "setting": key,
            "A": "(absent)" if va is None else va,
            "B": "(absent)" if vb is None else vb,
        }
        for key, va, vb in comparison.settings
    ]


def _settings_section(comparison: Comparison) -> str:
    if comparison.a.config is None or comparison.b.config is None:
        return "<p>No resolved config recorded for one of the runs: settings not compared.</p>"
    if not comparison.settings:
        return "<p>Same settings.</p>"
    return html_table(setting_rows(comparison))


def _guards_section(comparison: Comparison) -> str:
    if not comparison.guards:
        return "<p>Neither run judged its stages (guards off).</p>"
    rows = [{"stage": s, "A": da, "B": db} for s, da, db in comparison.guards]
    return html_table(rows)


def write_html(comparison: Comparison, path: Path) -> Path:
    """The comparison as one HTML file (no image, no stylesheet beside it)."""
    a, b = comparison.a.label, comparison.b.label
    sections = "".join(
        f"<h2>{html.escape(GROUP_TITLES.get(group, group))}</h2>"
        + html_table(
            # a dash as None: html_table writes it as a dash and explains it under the table
            [{k: None if v == MISSING else v for k, v in row.items()} for row in rows],
            note=NOTE,
        )
        for group, rows in grouped_rows(comparison).items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>funnelrec compare</title>
<style>{STYLE}</style></head><body>
<h1>funnelrec compare</h1>
<p>A: {html.escape(a)}<br>B: {html.escape(b)}</p>
<h2>Changed settings</h2>
{_settings_section(comparison)}
<h2>Guard decisions</h2>
{_guards_section(comparison)}
{sections}
</body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["grouped_rows", "is_unchanged", "metric_cells", "setting_rows", "signed", "write_html"]
