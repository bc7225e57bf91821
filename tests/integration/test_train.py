"""``funnelrec train``: production training on every row, through the real CLI, on the
simulator and (when ../shared is present) MovieLens-100k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from funnelrec.cli.app import app
from funnelrec.data.io import load_dataset_dir
from funnelrec.pipeline.persist import load_recommender

runner = CliRunner()
FAST = [
    "--set",
    "recall.channels.two_tower.train.epochs=1",
    "--set",
    "rank.train.loop.epochs=1",
    "--set",
    "rank.fusion.trials=3",
    "--set",
    "guards.enabled=false",  # the tests check the ranker is saved; guards: test_guards.py
]
ML100K = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"


def _train(data: Path, out: Path, extra: list[str] = FAST) -> None:
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "self-check passed" in result.output


def _latest_positive(data: Path) -> tuple[str, str, int]:
    inter = load_dataset_dir(data).interactions.filter(pl.col("event") != "impression")
    row = inter.sort("timestamp").tail(1)
    return str(row["user_id"][0]), str(row["item_id"][0]), int(row["timestamp"][0])


def _assert_used_every_row(data: Path, artifacts: Path) -> None:
    rec = load_recommender(artifacts)
    user, item, ts = _latest_positive(data)
    user_idx = int(rec.user_vocab.encode(pl.Series([user]))[0])
    item_idx = int(rec.item_vocab.encode(pl.Series([item]))[0])
    history = rec.history.filter(
        (pl.col("user_idx") == user_idx) & (pl.col("item_idx") == item_idx)
    )
    assert ts in history["timestamp"].to_list(), "the latest event is not in the history"
    assert rec.as_of == ts + 1 or rec.as_of > ts
    total = load_dataset_dir(data).interactions.height
    assert rec.rank_log is not None and rec.rank_log.height == total


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    result = runner.invoke(app, ["simulate", "--out", str(out), "--interactions", "20000"])
    assert result.exit_code == 0, result.output
    return out


def test_train_uses_every_row_and_recommend_loads_it(sim_dir: Path, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    _train(sim_dir, artifacts)
    _assert_used_every_row(sim_dir, artifacts)
    summary = json.loads((artifacts / "train_summary.json").read_text())
    assert summary["ranker"] == "mmoe"
    users = tmp_path / "users.csv"
    user, _, _ = _latest_positive(sim_dir)
    users.write_text(f"user_id\n{user}\nsomebody-new\n")
    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app, ["recommend", "--artifacts", str(artifacts), "--users", str(users), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    recs = pl.read_csv(out, infer_schema=False)
    assert recs.columns == ["user_id", "item_id", "rank", "score", "source"]
    assert recs.group_by("user_id").len()["len"].to_list() == [10, 10]


def test_train_bad_input_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--out", "x"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.shared_data
@pytest.mark.slow
def test_train_on_movielens_100k(tmp_path: Path) -> None:
    if not ML100K.is_dir():
        pytest.skip("../shared/data/movielens-100k is absent")
    data = tmp_path / "ml100k"
    result = runner.invoke(app, ["convert", "--format", "movielens-100k", str(ML100K), str(data)])
    assert result.exit_code == 0, result.output
    artifacts = tmp_path / "artifacts"
    _train(data, artifacts)
    _assert_used_every_row(data, artifacts)
    rec = load_recommender(artifacts)
    top = rec.recommend(rec.user_vocab.ids.head(3).to_list(), k=10)
    assert top.height == 30
    assert np.all(top.group_by("user_id").len()["len"].to_numpy() == 10)


def test_train_with_two_workers_writes_one_self_checked_artifact(
    sim_dir: Path, tmp_path: Path
) -> None:
    """``--workers 2`` relaunches the command under torchrun (a real process: the relaunch
    reads this process's command line); rank 0 writes the artifact, which loads and passes
    the self-check like a one-process one (docs/distributed.md)."""
    import subprocess
    import sys

    artifacts = tmp_path / "art"
    command = [sys.executable, "-m", "funnelrec", "train", "--data", str(sim_dir)]
    command += ["--out", str(artifacts), "--workers", "2", *FAST]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count("self-check passed") == 1, output  # rank 0 alone reports
    summary = json.loads((artifacts / "train_summary.json").read_text())
    assert summary["ranker"] and "two_tower" in summary["channels"]
    _assert_used_every_row(sim_dir, artifacts)
