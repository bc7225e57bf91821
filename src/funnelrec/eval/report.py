"""``funnelrec report RUN_DIR``: one self-contained HTML page over a run's ``metrics.json``.

The page holds the per-stage funnel table, the guards' decisions, the warm/cold slices and
these plots, embedded in the page as data URIs and also written next to it as PNGs:

* ``tradeoff.png``: accuracy (NDCG@K) against intra-list diversity (ILD@K) for MMR over lambda
  and DPP over theta, with the ranked list (no re-ranking) as the reference point;
* ``recall.png``: recall@K over K for each channel and the funnel's lists;
* ``channels.png``: each recall channel's share of the final top-K and of its hits;
* ``latency.png``: p50 / p99 per stage of single-user requests;
* ``objectives.png`` (when ``metrics.json`` has an ``objectives`` block): the objective
  trade-off of fusion weightings (:mod:`funnelrec.eval.objectives_report`).

Everything is read from ``metrics.json``, so a report can be re-rendered without re-running.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from funnelrec.errors import FunnelrecError
from funnelrec.eval.html import (
    TABLE_STYLE,
    embedded_image,
    format_cell,
    format_number,
    html_table,
)
from funnelrec.eval.objectives_report import objective_rows, objectives_section, plot_objectives
from funnelrec.eval.report_plots import (
    plot_channels,
    plot_latency,
    plot_recall_curve,
    plot_tradeoff,
)
from funnelrec.eval.report_tables import (
    funnel_rows,
    guard_rows,
    interval_rows,
    latency_rows,
    slice_rows,
    slice_sizes,
    sweep_rows,
)

REPORT_DIR = "report"
PLOTS = ("tradeoff.png", "recall.png", "channels.png", "latency.png")
STYLE = TABLE_STYLE + "img { max-width: 48%; margin: 0.5em 1% 0.5em 0; vertical-align: top; }\n"
FUNNEL_NOTE = (
    "the recall stage is the union of the channels' lists, with no single top-K order to "
    "judge; the re-ranker reorders the ranked candidates and hands on no new candidate pool"
)


def _load(run_dir: Path) -> dict[str, Any]:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FunnelrecError(f"{run_dir}: no metrics.json (is this the --out of funnelrec run?)")
    try:
        metrics: dict[str, Any] = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as e:
        raise FunnelrecError(f"{metrics_path}: not valid JSON ({e})") from None
    return metrics


def write_report(run_dir: Path) -> Path:
    """Render ``RUN_DIR/report/index.html`` (+ PNGs) from ``RUN_DIR/metrics.json``."""
    run_dir = Path(run_dir)
    metrics = _load(run_dir)
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    images = {
        "tradeoff": plot_tradeoff(metrics.get("rerank"), out / "tradeoff.png"),
        "recall": plot_recall_curve(metrics.get("recall"), out / "recall.png"),
        "channels": plot_channels(metrics.get("funnel"), out / "channels.png"),
        "latency": plot_latency(metrics.get("latency_ms"), out / "latency.png"),
    }
    img = {name: embedded_image(path, f"{name} plot") for name, path in images.items()}
    objectives = ""
    if metrics.get("objectives"):  # the objective trade-off (benchmarks/watch_time.py)
        plot = plot_objectives(metrics["objectives"], out / "objectives.png")
        rows = html_table(objective_rows(metrics["objectives"]))
        objectives = objectives_section(
            metrics["objectives"], rows, embedded_image(plot, "objective trade-off")
        )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>funnelrec report: {html.escape(run_dir.name)}</title>
<style>{STYLE}</style></head><body>
<h1>funnelrec run: {html.escape(str(run_dir))}</h1>
{_summary(metrics)}
<h2>Funnel, stage by stage</h2>
{html_table(funnel_rows(metrics), note=FUNNEL_NOTE)}
{_guards_section(metrics)}
<h2>Recall over K</h2>
{img["recall"]}
{_intervals_section(metrics)}
{_slices_section(metrics)}
{_rerank_section(metrics.get("rerank", {}), img["tradeoff"])}
<h2>Channels and latency</h2>
{img["channels"]}
{img["latency"]}
{html_table(latency_rows(metrics))}
{objectives}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _summary(metrics: Mapping[str, Any]) -> str:
    split, data = metrics.get("split", {}), metrics.get("data", {})

    def n(block: Mapping[str, Any], key: str) -> str:
        return format_number(block[key]) if key in block else "?"

    held_out = split.get("n_held_out_users", 0)
    sampled = (
        f" (a seeded sample of {format_number(held_out)}: eval.max_queries)"
        if held_out > split.get("n_queries", held_out)
        else ""
    )
    return f"""<p>split {html.escape(str(split.get("kind", "?")))}: {n(split, "n_queries")}
held-out users{sampled} ({n(split, "n_cold_user_queries")} without history); training
{n(data, "train_users")} users x {n(data, "train_items")} items,
{n(data, "train_positives")} positives.</p>"""


def _guards_section(metrics: Mapping[str, Any]) -> str:
    guards = metrics.get("guards")
    if not guards:
        return ""
    return f"""<h2>Do-no-harm guards</h2>
<p>Each stage judged against what it replaces on the guard slice; bypassed when the paired
difference gives no evidence it helps.</p>
{html_table(guard_rows(guards))}"""


def _intervals_section(metrics: Mapping[str, Any]) -> str:
    rows = interval_rows(metrics)
    if not rows:
        return ""
    intervals = metrics["intervals"]
    level = round(100 * intervals.get("level", 0.95))
    return f"""<h2>Bootstrap intervals</h2>
<p>Mean and {level}% bootstrap interval over {format_number(intervals.get("n_queries", 0))}
queries.</p>
{html_table(rows, note="the list is shorter than K")}"""


def _slices_section(metrics: Mapping[str, Any]) -> str:
    rows = slice_rows(metrics)
    if not rows:
        return ""
    return f"""<h2>Warm and cold slices</h2>
<p>Recall of each list on {html.escape(slice_sizes(metrics))}.</p>
{html_table(rows, note="the list is shorter than K, or the slice has no queries")}"""


def _rerank_section(rerank: Mapping[str, Any], image: str) -> str:
    return f"""<h2>Re-ranking trade-off</h2>
<p>Default: {html.escape(str(rerank.get("method", "none")))}
{format_cell(rerank.get("params") or "-")}; similarity:
{html.escape(str(rerank.get("similarity", "-")))}; sweep over
{format_number(rerank.get("sweep_queries", 0))} queries.</p>
{image}
{html_table(sweep_rows(rerank), note="no parameter: the ranked list, not re-ranked")}"""
