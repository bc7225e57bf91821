"""``funnelrec report RUN_DIR``: one self-contained HTML page over a run's ``metrics.json``.

The page holds the per-stage funnel table and three PNG plots written next to it:

* ``tradeoff.png``: accuracy (NDCG@K) against intra-list diversity (ILD@K) for MMR over lambda
  and DPP over theta, with the ranked list (no re-ranking) as the reference point;
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

from matplotlib.figure import Figure

from funnelrec.errors import FunnelrecError
from funnelrec.eval.html import empty_figure, html_table, save_figure
from funnelrec.eval.objectives_report import (
    objective_rows,
    objectives_section,
    plot_objectives,
)

REPORT_DIR = "report"
PLOTS = ("tradeoff.png", "channels.png", "latency.png")


def plot_tradeoff(rerank: Mapping[str, Any] | None, path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4.4))
    curves = (rerank or {}).get("tradeoff", {})
    if rerank is None or not curves:
        empty_figure(fig, "no re-ranking sweep in this run")
        return save_figure(fig, path)
    k = rerank["k"]
    ax = fig.add_subplot(1, 1, 1)
    for (method, points), marker in zip(curves.items(), ("o", "s", "^"), strict=False):
        xs = [p[f"ild@{k}"] for p in points]
        ys = [p[f"ndcg@{k}"] for p in points]
        ax.plot(xs, ys, marker=marker, label=method.upper())
        for p, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(
                f"{p['param']:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    for key, label, marker in (("baseline", "no re-rank", "*"), ("default", "default", "P")):
        point = rerank.get(key)
        if point and f"ild@{k}" in point:
            xy = (point[f"ild@{k}"], point[f"ndcg@{k}"])
            ax.scatter([xy[0]], [xy[1]], marker=marker, s=160, c="k", zorder=5)
            ax.annotate(label, xy, fontsize=8, xytext=(6, -10), textcoords="offset points")
    ax.set_xlabel(f"intra-list diversity ILD@{k} ({rerank.get('similarity', '')})")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Accuracy-diversity trade-off (labels: lambda / theta)")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_channels(funnel: Mapping[str, Any] | None, path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4.0))
    channels = (funnel or {}).get("channels", {})
    if funnel is None or not channels:
        empty_figure(fig, "no per-channel contribution in this run")
        return save_figure(fig, path)
    k = funnel["k"]
    ax = fig.add_subplot(1, 1, 1)
    names = list(channels)
    xs = range(len(names))
    share = [channels[n]["share"] for n in names]
    hit_share = [channels[n]["hit_share"] for n in names]
    ax.bar([x - 0.2 for x in xs], share, width=0.4, label=f"share of final top-{k}")
    ax.bar([x + 0.2 for x in xs], hit_share, width=0.4, label=f"share of hits in top-{k}")
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylabel("share")
    ax.set_title("Per-channel contribution to the final list")
    ax.legend()
    return save_figure(fig, path)


def plot_latency(latency: Mapping[str, Mapping[str, float]] | None, path: Path) -> Path:
    fig = Figure(figsize=(6.4, 4.0))
    if not latency:
        empty_figure(fig, "no request latency in this run")
        return save_figure(fig, path)
    ax = fig.add_subplot(1, 1, 1)
    stages = list(latency)
    ys = range(len(stages))
    ax.barh([y + 0.2 for y in ys], [latency[s]["p50"] for s in stages], height=0.4, label="p50")
    ax.barh([y - 0.2 for y in ys], [latency[s]["p99"] for s in stages], height=0.4, label="p99")
    ax.set_yticks(list(ys), stages)
    ax.invert_yaxis()
    ax.set_xlabel("ms per single-user request")
    ax.set_title("Per-stage latency")
    ax.legend()
    return save_figure(fig, path)


def funnel_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: the list the stage hands on, judged on the held-out truth."""
    funnel = metrics.get("funnel", {})
    return [dict(row) for row in funnel.get("stages", [])]


def latency_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "p50 ms": v["p50"], "p99 ms": v["p99"], "mean ms": v["mean"]}
        for stage, v in metrics.get("latency_ms", {}).items()
    ]


def write_report(run_dir: Path) -> Path:
    """Render ``RUN_DIR/report/index.html`` (+ PNGs) from ``RUN_DIR/metrics.json``."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise FunnelrecError(f"{run_dir}: no metrics.json (is this the --out of funnelrec run?)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as e:
        raise FunnelrecError(f"{metrics_path}: not valid JSON ({e})") from None
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    plot_tradeoff(metrics.get("rerank"), out / "tradeoff.png")
    plot_channels(metrics.get("funnel"), out / "channels.png")
    plot_latency(metrics.get("latency_ms"), out / "latency.png")
    objectives = ""
    if metrics.get("objectives"):  # the objective trade-off (benchmarks/watch_time.py)
        plot_objectives(metrics["objectives"], out / "objectives.png")
        rows = html_table(objective_rows(metrics["objectives"]))
        objectives = objectives_section(metrics["objectives"], rows)
    split, data = metrics.get("split", {}), metrics.get("data", {})
    rerank = metrics.get("rerank", {})
    sweep_rows = [
        {"method": method, "param": p["param"], **{k: v for k, v in p.items() if k != "param"}}
        for method, points in rerank.get("tradeoff", {}).items()
        for p in points
    ]
    if rerank.get("baseline"):
        sweep_rows.insert(0, {"method": "none", "param": "-", **rerank["baseline"]})
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>funnelrec report: {html.escape(run_dir.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 48%; margin: 0.5em 1% 0.5em 0; }}
</style></head><body>
<h1>funnelrec run: {html.escape(str(run_dir))}</h1>
<p>split {html.escape(str(split.get("kind", "?")))}: {split.get("n_queries", "?")} held-out
users ({split.get("n_cold_user_queries", "?")} without history); training
{data.get("train_users", "?")} users x {data.get("train_items", "?")} items,
{data.get("train_positives", "?")} positives.</p>
<h2>Funnel, stage by stage</h2>
{html_table(funnel_rows(metrics))}
<h2>Re-ranking trade-off</h2>
<p>Default: {html.escape(str(rerank.get("method", "none")))}
{html.escape(json.dumps(rerank.get("params", {})))}; similarity:
{html.escape(str(rerank.get("similarity", "-")))}; sweep over
{rerank.get("sweep_queries", 0)} queries.</p>
<img src="tradeoff.png" alt="accuracy-diversity trade-off">
{html_table(sweep_rows)}
<h2>Channels and latency</h2>
<img src="channels.png" alt="per-channel contribution">
<img src="latency.png" alt="per-stage latency">
{html_table(latency_rows(metrics))}
{objectives}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
