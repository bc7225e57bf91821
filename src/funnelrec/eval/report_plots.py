"""The plots of ``funnelrec report``: re-ranking trade-off, recall over K, channels, latency.

Each takes its block of ``metrics.json`` (``None`` when the run has none: the plot then says
so) and writes a PNG.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from funnelrec.eval.html import empty_figure, save_figure

# The funnel's own lists, drawn dashed over the channels' solid lines.
FUNNEL_LISTS = ("merged", "ranked", "reranked")
# Labels closer than this (display pixels) to one already drawn are left out: every sweep
# point labelled made the trade-off plot unreadable where the curves bunch up.
LABEL_SPACING_PX = 26.0


def plot_tradeoff(rerank: Mapping[str, Any] | None, path: Path) -> Path:
    """NDCG@K against ILD@K for each re-ranker's sweep, the ranked list and the default."""
    fig = Figure(figsize=(6.4, 4.4))
    curves = (rerank or {}).get("tradeoff", {})
    if rerank is None or not curves:
        empty_figure(fig, "no re-ranking sweep in this run")
        return save_figure(fig, path)
    k = rerank["k"]
    ax = fig.add_subplot(1, 1, 1)
    labels: list[tuple[float, float, str, tuple[int, int]]] = []
    offsets = ((4, 4), (4, -11), (-18, 4))  # one side per curve: MMR and DPP labels apart
    for (method, points), marker, offset in zip(curves.items(), "os^", offsets, strict=False):
        xs = [p[f"ild@{k}"] for p in points]
        ys = [p[f"ndcg@{k}"] for p in points]
        ax.plot(xs, ys, marker=marker, markersize=4, label=f"{method.upper()} sweep")
        labels += [
            (x, y, f"{p['param']:g}", offset) for p, x, y in zip(points, xs, ys, strict=True)
        ]
    # The references go in the legend, not as text: "no re-rank" and "default" often share a
    # point, and their labels were drawn on top of each other.
    for key, label, marker in (("baseline", "no re-rank", "*"), ("default", "default", "P")):
        point = rerank.get(key)
        if point and f"ild@{k}" in point:
            if key == "default":
                label = f"default ({rerank.get('method', '?')})"
            xy = ([point[f"ild@{k}"]], [point[f"ndcg@{k}"]])
            ax.scatter(*xy, marker=marker, s=140, c="k", zorder=5, label=label, alpha=0.6)
    _label_sparsely(ax, labels)
    ax.set_xlabel(f"intra-list diversity ILD@{k} ({rerank.get('similarity', '')})")
    ax.set_ylabel(f"NDCG@{k}")
    ax.set_title("Accuracy-diversity trade-off (point labels: lambda / theta)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def _label_sparsely(ax: Axes, labels: list[tuple[float, float, str, tuple[int, int]]]) -> None:
    """Annotate points in order, skipping any too close (on screen) to one already labelled;
    the table under the plot has every point."""
    ax.autoscale_view()
    placed: list[tuple[float, float]] = []
    for x, y, text, offset in labels:
        sx, sy = ax.transData.transform((x, y))
        if any(math.hypot(sx - px, sy - py) < LABEL_SPACING_PX for px, py in placed):
            continue
        placed.append((sx, sy))
        ax.annotate(text, (x, y), fontsize=7, xytext=offset, textcoords="offset points")


def recall_ks(recall: Mapping[str, Mapping[str, float]]) -> list[int]:
    """Every K with a ``recall@K`` in any list, ascending."""
    found = {int(m.group(1)) for v in recall.values() for key in v if (m := _RECALL.match(key))}
    return sorted(found)


_RECALL = re.compile(r"^recall@(\d+)$")


def plot_recall_curve(recall: Mapping[str, Mapping[str, float]] | None, path: Path) -> Path:
    """Recall@K over K for each channel (solid) and the funnel's lists (dashed)."""
    fig = Figure(figsize=(6.4, 4.4))
    ks = recall_ks(recall or {})
    if not recall or not ks:
        empty_figure(fig, "no per-channel recall in this run")
        return save_figure(fig, path)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in recall.items():
        points = [(k, values[f"recall@{k}"]) for k in ks if f"recall@{k}" in values]
        if not points:
            continue
        style = "--" if name in FUNNEL_LISTS else "-"
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, style, marker="o", markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.minorticks_off()
    ax.set_xlabel("K (length of the list)")
    ax.set_ylabel("recall@K")
    ax.set_title("Recall over K per channel (dashed: the funnel's lists)")
    ax.grid(alpha=0.3)
    # Beside the axes, not on them: with ten lists any corner inside hides some curve.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def plot_channels(funnel: Mapping[str, Any] | None, path: Path) -> Path:
    """Each recall channel's share of the final top-K and of its hits."""
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
    ax.set_xticks(list(xs), names, rotation=20, ha="right")
    ax.set_ylabel("share")
    ax.set_title("Per-channel contribution to the final list")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_latency(latency: Mapping[str, Mapping[str, float]] | None, path: Path) -> Path:
    """p50 / p99 per stage of single-user requests."""
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
    ax.legend(fontsize=8)
    return save_figure(fig, path)


__all__ = [
    "FUNNEL_LISTS",
    "plot_channels",
    "plot_latency",
    "plot_recall_curve",
    "plot_tradeoff",
    "recall_ks",
]
