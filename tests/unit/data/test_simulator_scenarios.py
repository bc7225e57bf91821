"""The simulator's scenarios: off by default; when on, each scenario has its own position
curve, click propensity and intent, and the log says which scenario each row belongs to."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.plan import SessionPlan, position_bias
from funnelrec.data.simulator.scenario_config import ScenarioConfig, ScenarioSpec
from funnelrec.data.simulator.scenarios import plan_scenarios

BASE = SimulatorConfig.for_interactions(60_000, seed=2)


@pytest.fixture(scope="module")
def plain() -> pl.DataFrame:
    return simulate(BASE).interactions


@pytest.fixture(scope="module")
def scenario_log() -> pl.DataFrame:
    return simulate(BASE.model_copy(update={"scenarios": ScenarioConfig.preset()})).interactions


def _clicked_impressions(log: pl.DataFrame) -> pl.DataFrame:
    """Impressions with ``clicked`` (0/1): a click on the same item in the same session."""
    keys = ["user_id", "item_id", "session_id"]
    clicks = log.filter(pl.col("event") == "click").select(keys).unique()
    return (
        log.filter(pl.col("event") == "impression")
        .join(clicks.with_columns(pl.lit(1).alias("clicked")), on=keys, how="left")
        .with_columns(pl.col("clicked").fill_null(0))
    )


def test_scenarios_are_off_by_default(plain: pl.DataFrame) -> None:
    assert "scenario" not in plain.columns
    assert not BASE.scenarios.enabled
    tables = plan_scenarios(BASE, _plan(4))
    assert tables.names == () and tables.intent.shape == (1, BASE.n_categories)
    assert np.all(tables.intent == 1.0) and np.all(tables.session == 0)
    assert np.array_equal(tables.curve[0], position_bias(BASE))


def test_scenarios_keep_users_items_and_sessions(plain: pl.DataFrame) -> None:
    on = simulate(BASE.model_copy(update={"scenarios": ScenarioConfig.preset()}))
    off = simulate(BASE)
    assert on.items.equals(off.items) and on.users.equals(off.users)
    # The same users run the same planned sessions; only what happens in them changes.
    assert set(on.interactions["session_id"].unique()) <= set(plain["session_id"].unique())


def test_every_session_has_one_scenario(scenario_log: pl.DataFrame) -> None:
    assert sorted(scenario_log["scenario"].unique()) == ["detail", "feed", "search"]
    per_session = scenario_log.group_by("session_id").agg(pl.col("scenario").n_unique())
    assert per_session["scenario"].max() == 1
    shares = scenario_log.filter(pl.col("event") == "impression")["scenario"].value_counts()
    share = dict(zip(shares["scenario"], shares["count"] / shares["count"].sum(), strict=True))
    assert share["feed"] > share["detail"] > share["search"] > 0.1  # shares 0.5 / 0.3 / 0.2


def test_position_curves_differ_by_scenario(scenario_log: pl.DataFrame) -> None:
    ctr = (
        _clicked_impressions(scenario_log)
        .group_by("scenario", "position")
        .agg(pl.col("clicked").mean())
    )

    def drop(name: str) -> float:
        rows = ctr.filter(pl.col("scenario") == name)
        top = rows.filter(pl.col("position") == 0)["clicked"][0]
        low = rows.filter(pl.col("position").is_between(4, 9))["clicked"].mean()
        return float(top / low)

    # search users read the top results (steep curve), a feed is scrolled (flat)
    assert drop("search") > 1.5 * drop("feed")


def test_intent_shifts_which_categories_are_clicked(scenario_log: pl.DataFrame) -> None:
    items = simulate(BASE).items.select("item_id", "category")
    rates = (
        _clicked_impressions(scenario_log)
        .join(items, on="item_id")
        .group_by("scenario", "category")
        .agg(pl.col("clicked").mean(), pl.len())
        .filter(pl.col("len") >= 200)
        .pivot(on="scenario", index="category", values="clicked")
        .drop_nulls()
    )
    assert rates.height >= 4
    corr = np.corrcoef(rates["feed"].to_numpy(), rates["search"].to_numpy())[0, 1]
    assert corr < 0.8  # the same categories are not equally engaging in every scenario


def test_scenario_config_errors() -> None:
    with pytest.raises(ValidationError, match="distinct"):
        ScenarioConfig(specs=(ScenarioSpec(name="a"), ScenarioSpec(name="a")))
    with pytest.raises(ValidationError):
        ScenarioSpec(name="a", share=0.0)
    with pytest.raises(ValidationError):
        SimulatorConfig(scenarios={"specs": [{"name": "a", "typo": 1}]})


def test_scenario_tables() -> None:
    config = BASE.model_copy(update={"scenarios": ScenarioConfig.preset()})
    tables = plan_scenarios(config, _plan(2_000))
    assert tables.curve.shape == (3, config.slate_size)
    assert np.all(np.diff(tables.curve, axis=1) < 0)  # every curve falls with position
    assert tables.mix_cum.shape == (3, 6) and np.all(tables.mix_cum[:, -1] == 1.0)
    assert abs(float(tables.intent.mean()) - 1.0) < 0.5
    counts = np.bincount(tables.session, minlength=3)
    assert counts.min() > 0 and counts.sum() == 2_000


def _plan(n_sessions: int) -> SessionPlan:
    """``n_sessions`` one-slate sessions of 10 users."""
    per_user = np.full(10, n_sessions // 10)
    per_user[0] += n_sessions - per_user.sum()
    user_ptr = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int64)
    return SessionPlan(
        user_ptr=user_ptr,
        steps=np.ones(n_sessions, dtype=np.int32),
        slot_ptr=np.arange(n_sessions + 1, dtype=np.int64) * 10,
    )
