"""``funnelrec train --engine spark``: ItemCF, Swing and popularity fitted on Spark from a
hive-partitioned folder; artifacts that load and pass the golden self-check, with the
single-machine fit's state. Skipped with the reason when Java is absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import funnelrec.spark.engine as spark_engine_module
from funnelrec.cli.app import app
from funnelrec.data.dataset import Dataset
from funnelrec.data.io import load_dataset_dir
from funnelrec.pipeline.persist import load_recommender
from funnelrec.recall.itemcf import ItemCF
from funnelrec.recall.popular import Popular
from funnelrec.recall.swing import Swing
from funnelrec.spark.session import java_available

pytestmark = pytest.mark.skipif(
    not java_available(),
    reason="Spark needs Java 17+ (java on PATH or JAVA_HOME): "
    "apt-get install openjdk-17-jre-headless",
)
runner = CliRunner()
CONFIG = """
[recall.channels.itemcf]
kind = "itemcf"
neighbors = 50
[recall.channels.swing]
kind = "swing"
neighbors = 50
[recall.channels.popular]
kind = "popular"
[recall.merge.quotas]
itemcf = 80
swing = 60
popular = 40
[rank]
enabled = false  # the ranking window's fits go through the same fitter: test_recall_fit.py
"""


def test_train_on_spark_loads_self_checks_and_matches_numba(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "sim"
    result = runner.invoke(
        app, ["simulate", "--out", str(data_dir), "--interactions", "20000", "--partitioned"]
    )
    assert result.exit_code == 0, result.output
    assert (data_dir / "interactions").is_dir()
    config = tmp_path / "spark.toml"
    config.write_text(CONFIG)
    spark_fits: list[str] = []
    for name in ("fit_itemcf_arrays", "fit_swing_arrays", "item_popularity"):
        real = getattr(spark_engine_module, name)

        def counted(*args: object, _real: object = real, _name: str = name) -> object:
            spark_fits.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(spark_engine_module, name, counted)

    artifacts = tmp_path / "artifacts"
    args = ["train", "--data", str(data_dir), "--out", str(artifacts), "--config", str(config)]
    result = runner.invoke(app, [*args, "--engine", "spark", "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    assert "self-check passed" in result.output
    assert sorted(spark_fits) == ["fit_itemcf_arrays", "fit_swing_arrays", "item_popularity"]
    summary = json.loads((artifacts / "train_summary.json").read_text())
    assert summary["engine"] == "spark (local[2])"

    loaded = load_recommender(artifacts)
    tables = load_dataset_dir(data_dir)
    data = Dataset.build(tables.interactions, tables.items, tables.users)
    for name, cls in (("itemcf", ItemCF), ("swing", Swing)):
        channel = loaded.channels[name]
        assert type(channel) is cls  # serving rebuilds the single-machine class
        expected = cls(channel.config).fit(data, rng=np.random.default_rng(0))
        np.testing.assert_array_equal(channel.neighbor_idx, expected.neighbor_idx)
        np.testing.assert_allclose(channel.neighbor_sim, expected.neighbor_sim, rtol=1e-5)
    popular = loaded.channels["popular"]
    assert type(popular) is Popular
    expected_popular = Popular(popular.config).fit(data, rng=np.random.default_rng(0))
    np.testing.assert_allclose(popular.item_score, expected_popular.item_score, rtol=1e-5)
    np.testing.assert_array_equal(popular.item_category, expected_popular.item_category)

    users = tmp_path / "users.csv"
    users.write_text("user_id\n" + str(tables.interactions["user_id"][0]) + "\n")
    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app, ["recommend", "--artifacts", str(artifacts), "--users", str(users), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output  # recommend runs the golden self-check first


RANKED_CONFIG = """
[recall.channels.itemcf]
kind = "itemcf"
neighbors = 50
[recall.channels.popular]
kind = "popular"
[recall.merge.quotas]
itemcf = 80
popular = 40
[rank.model]
kind = "deepfm"
[rank.train.loop]
epochs = 1
[rank.fusion]
trials = 3
[guards]
enabled = false
"""


def test_train_on_spark_computes_the_rankers_aggregates_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ranker on, its large feature batches (the training samples) get their
    point-in-time aggregates from Spark, equal to the local ones, and the artifact serves."""
    from funnelrec.features.pit.dense import _aggregates

    data_dir = tmp_path / "sim"
    result = runner.invoke(app, ["simulate", "--out", str(data_dir), "--interactions", "20000"])
    assert result.exit_code == 0, result.output
    config = tmp_path / "ranked.toml"
    config.write_text(RANKED_CONFIG)
    # The training batch (a few thousand samples here) goes to Spark; small batches stay local.
    monkeypatch.setattr(spark_engine_module, "AGGREGATES_MIN_SAMPLES", 1_000)
    computed: list[int] = []
    real = spark_engine_module.aggregate_features

    def checked(spark: object, config: Any, state: Any, samples: Any, log: Any, **kw: Any) -> Any:
        got = real(spark, config, state, samples, log, **kw)  # type: ignore[arg-type]
        expected = np.column_stack(_aggregates(config, state, samples, log, None))
        np.testing.assert_array_equal(got, expected)
        computed.append(samples.height)
        return got

    monkeypatch.setattr(spark_engine_module, "aggregate_features", checked)
    artifacts = tmp_path / "artifacts"
    args = ["train", "--data", str(data_dir), "--out", str(artifacts), "--config", str(config)]
    result = runner.invoke(app, [*args, "--engine", "spark", "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    assert "self-check passed" in result.output
    assert computed and min(computed) >= 1_000, computed
    assert load_recommender(artifacts).ranker is not None
