"""The objective trade-off section of ``funnelrec report``: a table and ``objectives.png``.

Rendered when ``metrics.json`` has an ``objectives`` block (:func:`funnelrec.eval.objectives.
objective_tradeoff`, e.g. written by ``benchmarks/watch_time.py``). The plot puts each fusion
weighting at (click NDCG@k, simulated next-day return) when the run was simulated, else at
(click NDCG@k, watch-time NDCG@k): "clicks up, retention down" is a point to the right and
below another.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from funnelrec.eval.html import save_figure

__all__ = ["PLOT", "objective_rows", "objectives_section", "plot_objectives"]

PLOT = "objectives.png"


def objective_rows(objectives: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per weighting: its name, weights and every metric.

    Example:
        >>> objective_rows({"k": 10, "weightings": [{"name": "a", "kind": "power_product",
        ...     "weights": {"click": 1.0}, "click_ndcg@10": 0.5}]})
        [{'weighting': 'a', 'weights': 'click 1', 'click_ndcg@10': 0.5}]
    """
    rows = []
    for w in objectives.get("weightings", []):
        weights = ", ".join(f"{t} {v:g}" for t, v in w["weights"].items())
        metrics = {key: v for key, v in w.items() if key not in ("name", "kind", "weights")}
        rows.append({"weighting": w["name"], "weights": weights, **metrics})
    return rows


def plot_objectives(objectives: Mapping[str, Any] | None, path: Path) -> Path:
    """Write the trade-off plot of ``objectives`` (a placeholder without any) to ``path``."""
    fig = Figure(figsize=(6.4, 4.4))
    weightings = (objectives or {}).get("weightings", [])
    if not weightings:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no objective trade-off in this run", ha="center", va="center")
    else:
        k = objectives["k"] if objectives else 10
        y_key = "sim_next_day_return" if objectives and objectives.get("simulated") else None
        y_key = y_key or f"watch_time_ndcg@{k}"
        x_key = f"click_ndcg@{k}"
        ax = fig.add_subplot(1, 1, 1)
        for w in weightings:
            ax.scatter([w[x_key]], [w[y_key]], s=60)
            ax.annotate(w["name"], (w[x_key], w[y_key]), fontsize=8, xytext=(5, 4),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel(f"click NDCG@{k} (logged test exposures)")
        ax.set_ylabel("next-day return (simulated)" if y_key == "sim_next_day_return" else y_key)
        ax.set_title("Objective trade-off per fusion weighting")
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def objectives_section(objectives: Mapping[str, Any], table: str, image: str) -> str:
    """The HTML section (``table``: the rows already rendered by the report's table helper;
    ``image``: the plot's ``<img>``, embedded by the report)."""
    k = objectives.get("k", "?")
    simulated = (
        "next-day return, expected clicks and seconds watched come from the simulator's "
        "ground truth (sim_*)"
        if objectives.get("simulated")
        else "no simulator ground truth in this run: logged outcomes only"
    )
    return f"""<h2>Objective trade-off</h2>
<p>Each fusion weighting of the same ranker's task probabilities, top {html.escape(str(k))}
of {objectives.get("queries", "?")} test queries; {html.escape(simulated)}.</p>
{image}
{table}"""
