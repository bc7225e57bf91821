"""Rank-stage metrics split by scenario."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.eval.scenarios import by_scenario
from funnelrec.metrics.rank import rank_report


def test_each_scenario_gets_its_own_report() -> None:
    samples = pl.DataFrame(
        {"query_id": [0, 0, 1, 1, 2, 2], "scenario": ["a", "a", "b", "b", None, None]}
    )
    labels = {"click": np.array([0, 1, 1, 0, 0, 1])}
    probs = {"click": np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.4])}
    out = by_scenario(samples, labels, probs)
    assert sorted(out) == ["(none)", "a", "b"]
    assert out["a"]["tasks"]["click"]["auc"] == 1.0 and out["b"]["tasks"]["click"]["auc"] == 0.0
    assert out["a"]["n_samples"] == 2 and out["a"]["n_queries"] == 1
    whole_b = rank_report({"click": labels["click"][2:4]}, {"click": probs["click"][2:4]}, [1, 1])
    assert out["b"]["tasks"] == whole_b


def test_no_split_without_several_scenarios() -> None:
    labels = {"click": np.array([0, 1])}
    probs = {"click": np.array([0.1, 0.9])}
    assert by_scenario(pl.DataFrame({"query_id": [0, 0]}), labels, probs) == {}
    one = pl.DataFrame({"query_id": [0, 0], "scenario": ["a", "a"]})
    assert by_scenario(one, labels, probs) == {}
