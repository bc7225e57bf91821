"""The objective trade-off (eval/objectives.py) and its section of `funnelrec report`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.watch_config import WatchConfig
from funnelrec.eval.objectives import LoggedOutcomes, objective_tradeoff, top_k_lists
from funnelrec.eval.report import write_report
from funnelrec.rank.fusion import FusionConfig


def outcomes() -> LoggedOutcomes:
    return LoggedOutcomes(
        group=np.array([0, 0, 0, 1, 1, 1]),
        click=np.array([1.0, 0, 1, 0, 1, 0]),
        play_s=np.array([2.0, 0, 50, 0, 30, 0]),
        completed=np.array([0.0, 0, 1, 0, 1, 0]),
        like=np.array([1.0, 0, 0, 0, 0, 0]),
    )


PROBS = {
    "click": np.array([0.9, 0.1, 0.5, 0.2, 0.6, 0.3]),
    "like": np.array([0.9, 0.1, 0.1, 0.1, 0.1, 0.5]),
    "watch_time": np.array([0.1, 0.1, 0.9, 0.1, 0.8, 0.2]),
}


def test_weightings_trade_objectives() -> None:
    weightings = {
        "like": FusionConfig(weights={"like": 1.0}),
        "watch": FusionConfig(weights={"watch_time": 1.0}),
    }
    out = objective_tradeoff(PROBS, weightings, outcomes(), k=1)
    rows = {w["name"]: w for w in out["weightings"]}
    assert out["queries"] == 2 and not out["simulated"]
    assert rows["like"]["like_ndcg@1"] > rows["watch"]["like_ndcg@1"]
    assert rows["watch"]["watch_time_ndcg@1"] == 1.0 > rows["like"]["watch_time_ndcg@1"]
    assert rows["watch"]["completion@1"] == 1.0


def test_top_k_lists_pads() -> None:
    queries, lists = top_k_lists(
        np.array([3, 3, 8]), np.array([1.0, 2.0, 0.0]), np.array([7, 8, 9]), 3
    )
    assert queries.tolist() == [3, 8] and lists.tolist() == [[8, 7, -1], [9, -1, -1]]


def test_simulated_engagement_needs_ids() -> None:
    data = simulate(
        SimulatorConfig.for_interactions(5_000).model_copy(
            update={"watch": WatchConfig(enabled=True)}
        )
    )
    weightings = {"click": FusionConfig(weights={"click": 1.0})}
    with pytest.raises(ValueError, match="user_id and item_id"):
        objective_tradeoff(PROBS, weightings, outcomes(), truth=data.watch)
    out = objective_tradeoff(
        PROBS,
        weightings,
        outcomes(),
        k=2,
        truth=data.watch,
        user_id=np.array([1, 1, 1, 2, 2, 2]),
        item_id=np.array([1, 2, 3, 4, 5, 6]),
    )
    row = out["weightings"][0]
    assert out["simulated"] and 0 < row["sim_next_day_return"] < 1
    assert row["sim_clicks@2"] > 0 and row["sim_watch_s@2"] > 0


def test_report_renders_the_tradeoff_with_its_plot(tmp_path: Path) -> None:
    weightings = {"watch": FusionConfig(weights={"watch_time": 1.0})}
    block = objective_tradeoff(PROBS, weightings, outcomes(), k=2)
    (tmp_path / "metrics.json").write_text(json.dumps({"objectives": block}))
    page = write_report(tmp_path).read_text()
    assert "Objective trade-off" in page and 'alt="objective trade-off"' in page
    assert (tmp_path / "report" / "objectives.png").stat().st_size > 0


def test_report_without_tradeoff_has_no_section(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{}")
    assert "Objective trade-off" not in write_report(tmp_path).read_text()
