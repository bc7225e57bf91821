"""The analysis of an outcome table: a planted gain is found and shipped, an AA test is not,
a broken split stops the experiment; the report and the JSON are written."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl

from funnelrec.experiment.analysis import analyse, decide
from funnelrec.experiment.report import write_experiment_report


def outcomes(rng: np.random.Generator, n: int, lift: float, days: int = 7) -> pl.DataFrame:
    """User-days: every user every day, clicks Poisson around their own rate."""
    user = np.repeat(np.arange(1, n + 1), days)
    day = np.tile(np.arange(days), n)
    treated = user % 2 == 0
    rate = np.repeat(rng.gamma(2.0, 0.5, n), days)
    clicks = rng.poisson(rate * np.where(treated, lift, 1.0))
    return pl.DataFrame(
        {
            "day": day.astype(np.int32),
            "user_id": user,
            "arm": np.where(treated, "treatment", "control"),
            "impressions": np.full(user.shape[0], 10, dtype=np.int32),
            "clicks": clicks.astype(np.int32),
            "watch_s": clicks * 20.0,
            "returned": rng.random(user.shape[0]) < 0.6,
        }
    ), pl.DataFrame({"user_id": np.arange(1, n + 1), "pre_clicks": rng.poisson(rate[::days] * 5)})


def test_a_planted_gain_is_shipped_and_cuped_helps() -> None:
    table, pre = outcomes(np.random.default_rng(0), 4000, lift=1.1)
    result = analyse(table, pre.with_columns(pl.col("pre_clicks").cast(pl.Float64)),
                     {"control": 1, "treatment": 1}, "control")  # fmt: skip
    assert result.decision == "ship", result.reason
    assert not result.srm.mismatch and result.users == {"control": 2000, "treatment": 2000}
    assert result.cuped_variance_ratio < 0.9  # pre-period clicks predict clicks
    e = result.effects["clicks_per_user_cuped"]
    assert e.se < result.effects["clicks_per_user"].se
    assert result.daily.height == 7
    valid = result.daily["always_valid_p"].to_list()
    assert all(b <= a for a, b in itertools.pairwise(valid))


def test_no_difference_is_no_decision_and_a_skewed_split_stops() -> None:
    table, pre = outcomes(np.random.default_rng(1), 20_000, lift=1.0, days=3)
    pre = pre.with_columns(pl.col("pre_clicks").cast(pl.Float64))
    arms = {"control": 1.0, "treatment": 1.0}
    assert analyse(table, pre, arms, "control").decision == "no decision"
    # lose 8% of the treatment's users (a logging bug): 52/48, which 20,000 users reveal
    rng = np.random.default_rng(2)
    lost = [u for u in range(2, 20_001, 2) if rng.random() < 0.08]
    skewed = table.filter(~pl.col("user_id").is_in(lost))
    result = analyse(skewed, pre, arms, "control")
    assert result.srm.mismatch and result.decision == "stop"


def test_a_significant_loss_of_return_keeps_the_control() -> None:
    from funnelrec.abtest.stats import Effect, sample_ratio

    srm = sample_ratio([100, 100], [1, 1])
    up = Effect(1.0, 1.2, 0.2, 0.05, 0.1, 0.3, 0.001)
    down = Effect(0.6, 0.5, -0.1, 0.02, -0.14, -0.06, 0.001)
    decision, reason = decide(srm, {"clicks_per_user_cuped": up, "next_day_return": down})
    assert decision == "keep control" and "guardrail" in reason


def test_report_and_json_are_written(tmp_path: Path) -> None:
    table, pre = outcomes(np.random.default_rng(3), 600, lift=1.2)
    pre = pre.with_columns(pl.col("pre_clicks").cast(pl.Float64))
    result = analyse(table, pre, {"control": 1.0, "treatment": 1.0}, "control")
    page = write_experiment_report(tmp_path, result, {"days": 7})
    text = page.read_text()
    assert "Decision:" in text and text.count('src="data:image/png;base64,') == 2
    assert 'src="daily.png' not in text  # self-contained: no link to a file beside it
    assert (tmp_path / "daily.png").stat().st_size > 1000
    data = json.loads((tmp_path / "analysis.json").read_text())
    assert data["decision"] == result.decision and len(data["daily"]) == 7
    assert set(data["effects"]) >= {"ctr", "clicks_per_user_cuped", "next_day_return"}
