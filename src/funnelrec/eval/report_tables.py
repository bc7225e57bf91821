"""The tables of ``funnelrec report``: rows (dicts) read from ``metrics.json``.

Values stay numbers here; :func:`funnelrec.eval.html.html_table` formats them, so every
report writes a count, a rate and an interval the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from funnelrec.eval.html import format_interval, format_number
from funnelrec.eval.report_plots import recall_ks

SLICES = {
    "warm_users": "warm users",
    "cold_users": "cold users",
    "warm_items": "warm items",
    "cold_items": "cold items",
}


def funnel_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: the list the stage hands on, judged on the held-out truth."""
    funnel = metrics.get("funnel", {})
    return [dict(row) for row in funnel.get("stages", [])]


def latency_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "p50 ms": v["p50"], "p99 ms": v["p99"], "mean ms": v["mean"]}
        for stage, v in metrics.get("latency_ms", {}).items()
    ]


def sweep_rows(rerank: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The re-ranking sweep, the ranked list (no re-ranking) first."""
    rows = [
        {"method": method, "param": p["param"], **{k: v for k, v in p.items() if k != "param"}}
        for method, points in rerank.get("tradeoff", {}).items()
        for p in points
    ]
    if rerank.get("baseline"):
        # "no re-rank", as the plot's legend says: a cell reading "none" looks like a gap
        rows.insert(0, {"method": "no re-rank", "param": None, **rerank["baseline"]})
    return rows


def guard_rows(guards: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each do-no-harm guard: what it compared, the paired interval and the decision."""
    return [
        {
            "stage": g["stage"],
            "judged against": g.get("baseline") or "-",
            "metric": g.get("metric") or "-",
            "value": g.get("value"),
            "baseline value": g.get("baseline_value"),
            "95% interval of the difference": _interval(g.get("diff_low"), g.get("diff_high")),
            "queries": g.get("n_queries"),
            "decision": "kept" if g.get("kept") else "bypassed",
            "why": _verdict(g.get("reason", ""), g.get("metric") or ""),
            "detail": g.get("detail") or "-",
        }
        for g in guards
    ]


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else format_interval(low, high)


def _verdict(reason: str, metric: str) -> str:
    """The reason up to its numbers ("bypassed (not better: ...)"): the numbers are columns.

    Example:
        >>> _verdict("kept: ndcg@10 0.1511 vs uniform fusion 0.1501, ...", "ndcg@10")
        'kept'
    """
    if not metric:
        return reason
    return re.split(rf"[:;] {re.escape(metric)} ", reason, maxsplit=1)[0]


def slice_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Recall of every list on the warm / cold user and item slices, at the funnel's K and at
    the largest K (missing where a list is shorter than K or a slice has no queries)."""
    slices = {name: v for name, v in metrics.get("slices", {}).items() if name in SLICES}
    recall = metrics.get("recall", {})
    ks = recall_ks(recall)
    if not slices or not ks:
        return []
    k_small = metrics.get("funnel", {}).get("k", ks[0])
    wanted = sorted({k_small, ks[-1]})
    rows = []
    for name in recall:
        row: dict[str, Any] = {"list": name}
        for k in wanted:
            for label, values in slices.items():
                row[f"{SLICES[label]} R@{k}"] = values.get(name, {}).get(f"recall@{k}")
        rows.append(row)
    return rows


def slice_sizes(metrics: Mapping[str, Any]) -> str:
    """ "warm users 3,067 queries (8,023 held-out items), ..." for the slice table's caption."""
    return "; ".join(
        f"{SLICES[name]} {format_number(v.get('n_queries', 0))} queries "
        f"({format_number(v.get('n_truth', 0))} held-out items)"
        for name, v in metrics.get("slices", {}).items()
        if name in SLICES
    )


def interval_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each list's mean with its bootstrap interval at the funnel's K and the largest K."""
    intervals = metrics.get("intervals", {})
    lists, means = intervals.get("lists", {}), metrics.get("recall", {})
    ks = recall_ks(means)
    if not lists or not ks:
        return []
    k_small = metrics.get("funnel", {}).get("k", ks[0])
    wanted = [f"{m}@{k}" for k in sorted({k_small, ks[-1]}) for m in ("recall", "ndcg")]
    rows = []
    for name, values in lists.items():
        row: dict[str, Any] = {"list": name}
        for metric in wanted:
            mean = means.get(name, {}).get(metric)
            span = values.get(metric)
            cell = None if mean is None or span is None else format_interval(*span)
            row[metric] = None if cell is None else f"{format_number(mean)} {cell}"
        rows.append(row)
    return rows


__all__ = [
    "SLICES",
    "funnel_rows",
    "guard_rows",
    "interval_rows",
    "latency_rows",
    "slice_rows",
    "slice_sizes",
    "sweep_rows",
]
