"""The opt-in position_bias block of metrics.json."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.io import RawTables
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.simulator.exposure import exposure_interactions, simulate_exposure
from funnelrec.data.simulator.exposure_config import ExposureConfig
from funnelrec.eval.position_bias import position_bias_report
from funnelrec.eval.run import run_tables


def test_off_by_default() -> None:
    assert ExperimentConfig().eval.position_bias is False


def test_random_slice_curve_and_debiased_ctr() -> None:
    cfg = ExposureConfig(
        n_users=100, n_items=60, n_requests=3000, random_share=0.5, propensity_samples=16
    )
    report = position_bias_report(exposure_interactions(simulate_exposure(cfg)))
    assert report["method"] == "randomisation"
    assert report["impressions"] == 3000 * cfg.slate_size
    np.testing.assert_allclose(report["curve"], cfg.curve_values(), atol=0.1)
    assert report["ctr_debiased"] > report["ctr_biased"]


def test_em_without_random_slice_and_skips() -> None:
    cfg = ExposureConfig(
        n_users=50, n_items=40, n_requests=500, random_share=0.0, propensity_samples=16
    )
    frame = exposure_interactions(simulate_exposure(cfg)).drop("is_rand")
    assert position_bias_report(frame)["method"] == "em"
    assert "skipped" in position_bias_report(frame.drop("position"))
    no_impressions = frame.filter(pl.col("event") == "click")
    assert "skipped" in position_bias_report(no_impressions)


@pytest.mark.slow
def test_run_writes_the_block_when_asked(tmp_path) -> None:
    sim = simulate(SimulatorConfig.for_interactions(10_000, seed=0))
    overrides = [
        "recall.channels.two_tower.train.epochs=1",
        "rank.enabled=false",
        "eval.latency_requests=0",
        "eval.rerank_sweep_queries=0",
        "eval.interval_resamples=0",
        "eval.position_bias=true",
    ]
    metrics = run_tables(
        RawTables(sim.interactions, sim.items, sim.users),
        tmp_path,
        load_config(overrides=overrides),
    )
    block = json.loads((tmp_path / "metrics.json").read_text())["position_bias"]
    assert block == metrics["position_bias"]
    assert block["method"] == "em" and block["curve"][0] == 1.0
