"""The experiment report: the decision, the per-arm table, the checks and the per-day plots,
as ``OUT/report.html`` next to ``analysis.json`` (one self-contained file: the plots are
embedded; the PNGs are written beside it too)."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure

from funnelrec.eval.html import embedded_image, html_table, save_figure
from funnelrec.experiment.analysis import ExperimentAnalysis


def analysis_json(analysis: ExperimentAnalysis) -> dict[str, Any]:
    """The analysis as plain JSON values."""
    return {
        "control": analysis.control,
        "treatment": analysis.treatment,
        "users": analysis.users,
        "decision": analysis.decision,
        "reason": analysis.reason,
        "srm": dataclasses.asdict(analysis.srm) | {"mismatch": analysis.srm.mismatch},
        "effects": {
            name: dataclasses.asdict(e) | {"relative": e.relative}
            for name, e in analysis.effects.items()
        },
        "cuped_variance_ratio": analysis.cuped_variance_ratio,
        "daily": analysis.daily.to_dicts(),
        "novelty": None
        if analysis.novelty is None
        else {
            "slope": analysis.novelty.slope,
            "p_value": analysis.novelty.p_value,
            "novelty": analysis.novelty.novelty,
            "by_day": [
                {"day": d, "diff": e.diff, "low": e.low, "high": e.high}
                for d, e in zip(analysis.novelty.days, analysis.novelty.effects, strict=True)
            ],
        },
    }


def plot_daily(analysis: ExperimentAnalysis, path: Path) -> Path:
    """Cumulative effect on clicks per user by day, with its interval and both p-values."""
    daily = analysis.daily
    fig = Figure(figsize=(9.6, 3.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    day = daily["day"].to_numpy() + 1
    left.fill_between(day, daily["low"].to_numpy(), daily["high"].to_numpy(), alpha=0.25)
    left.plot(day, daily["diff"].to_numpy(), marker="o")
    left.axhline(0.0, color="black", linewidth=0.8)
    left.set_xlabel("day")
    left.set_ylabel(f"clicks per user, {analysis.treatment} - {analysis.control}")
    left.set_title("Cumulative effect (95% interval)")
    right.plot(day, daily["naive_p"].to_numpy(), marker="o", label="naive (fixed horizon)")
    right.plot(day, daily["always_valid_p"].to_numpy(), marker="s", label="mSPRT (always valid)")
    right.axhline(0.05, color="red", linewidth=0.8, linestyle="--", label="alpha 0.05")
    right.set_yscale("log")
    right.set_xlabel("day")
    right.set_title("p-value if you stopped that day")
    right.legend(fontsize=8)
    return save_figure(fig, path)


def plot_novelty(analysis: ExperimentAnalysis, path: Path) -> Path:
    """The effect on clicks per user-day by day since the user's first exposure."""
    fig = Figure(figsize=(4.8, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    trend = analysis.novelty
    if trend is not None:
        days = [d + 1 for d in trend.days]
        below = [e.diff - e.low for e in trend.effects]
        above = [e.high - e.diff for e in trend.effects]
        ax.errorbar(
            days,
            [e.diff for e in trend.effects],
            yerr=[below, above],
            marker="o",
            capsize=3,
        )
        ax.set_title(f"By exposure day (slope p = {trend.p_value:.2g})")
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("day since first exposure")
    ax.set_ylabel("clicks per user-day, effect")
    return save_figure(fig, path)


def write_experiment_report(out: Path, analysis: ExperimentAnalysis, setup: dict[str, Any]) -> Path:
    """``out/analysis.json``, the plots and ``out/report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    data = analysis_json(analysis) | {"setup": setup}
    (out / "analysis.json").write_text(json.dumps(data, indent=2, default=str))
    daily_png = plot_daily(analysis, out / "daily.png")
    novelty_png = plot_novelty(analysis, out / "novelty.png")
    rows = [
        {
            "metric": name,
            analysis.control: e.control,
            analysis.treatment: e.treatment,
            "diff": e.diff,
            "95% interval": f"[{e.low:.4g}, {e.high:.4g}]",
            "relative": f"{e.relative:+.2%}" if e.control else "-",
            "p": f"{e.p_value:.2g}",
        }
        for name, e in analysis.effects.items()
    ]
    srm = analysis.srm
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>funnelrec experiment</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; margin: 0.5em 0; }}
</style></head><body>
<h1>Experiment: {html.escape(analysis.treatment)} vs {html.escape(analysis.control)}</h1>
<p><b>Decision: {html.escape(analysis.decision)}</b> ({html.escape(analysis.reason)})</p>
<p>{html.escape(json.dumps(setup, default=str))}</p>
<h2>Per-arm metrics (per user over the experiment)</h2>
{html_table(rows)}
<p>CUPED (pre-period clicks) left {analysis.cuped_variance_ratio:.1%} of the variance of
clicks per user.</p>
<h2>Checks</h2>
<p>Users per arm: {html.escape(json.dumps(analysis.users))}; sample-ratio check chi2
{srm.chi2:.2f}, p = {srm.p_value:.3g}: {"MISMATCH" if srm.mismatch else "ok"}.</p>
<h2>Day by day</h2>
{embedded_image(daily_png, "cumulative effect and p-values by day")}
{html_table(_daily_rows(analysis.daily))}
<h2>Novelty</h2>
{embedded_image(novelty_png, "effect by day since first exposure")}
<p>{_novelty_text(analysis)}</p>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _daily_rows(daily: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "day": int(r["day"]) + 1,
            "diff": r["diff"],
            "95% interval": f"[{r['low']:.4g}, {r['high']:.4g}]",
            "naive p": f"{r['naive_p']:.2g}",
            "always-valid p": f"{r['always_valid_p']:.2g}",
        }
        for r in daily.iter_rows(named=True)
    ]


def _novelty_text(analysis: ExperimentAnalysis) -> str:
    trend = analysis.novelty
    if trend is None:
        return "Fewer than 3 exposure days: no trend to test."
    verdict = "a novelty effect: the gain fades" if trend.novelty else "no novelty effect found"
    return f"Slope {trend.slope:+.4g} per day (p = {trend.p_value:.2g}): {verdict}."


__all__ = ["analysis_json", "plot_daily", "plot_novelty", "write_experiment_report"]
