"""Saved and reloaded recommenders give identical output; tampering is refused."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.persist import load_recommender, save_recommender
from funnelrec.pipeline.recommender import Recommender


@pytest.fixture
def saved(small_log, tmp_path: Path) -> tuple[Recommender, Path]:
    inter, items = small_log
    data = Dataset.build(inter, items)
    rec = Recommender.fit(data, load_config(), rng=np.random.default_rng(0))
    save_recommender(rec, tmp_path / "art")
    return rec, tmp_path / "art"


def test_round_trip_identical(saved) -> None:
    rec, path = saved
    loaded = load_recommender(path)
    users = rec.user_vocab.ids.head(20)
    a = rec.run(rec.queries(users, 3_000_000), k=10).ranked
    b = loaded.run(loaded.queries(users, 3_000_000), k=10).ranked
    assert a.equals(b)


def test_tampered_file_refused(saved) -> None:
    _, path = saved
    npz = path / "channels" / "itemcf.npz"
    npz.write_bytes(npz.read_bytes() + b"x")
    with pytest.raises(FunnelrecError, match="does not match the manifest"):
        load_recommender(path)


def test_not_an_artifact_dir(tmp_path: Path) -> None:
    with pytest.raises(FunnelrecError, match="no manifest"):
        load_recommender(tmp_path)


def test_round_trip_with_ranker_identical(tmp_path: Path) -> None:
    from funnelrec.data.simulator import SimulatorConfig, simulate
    from funnelrec.eval.protocol import run_experiment

    sim = simulate(SimulatorConfig.for_interactions(30_000, seed=1))
    config = load_config(
        overrides=[
            "recall.channels.two_tower.train.epochs=1",
            "rank.model.kind=deepfm",
            "rank.train.loop.epochs=1",
            "rank.samples.max_train_samples=20000",
            "rank.fusion.trials=3",
            "guards.enabled=false",  # the ranker must be there to round-trip
        ]
    )
    result = run_experiment(sim.interactions, sim.items, sim.users, config)
    rec = result.recommender
    assert rec.ranker is not None
    save_recommender(rec, tmp_path / "art")
    loaded = load_recommender(tmp_path / "art")
    assert loaded.ranker is not None
    users = rec.user_vocab.ids.head(30)
    as_of = int(rec.history["timestamp"].max()) + 1
    a = rec.run(rec.queries(users, as_of), k=10)
    b = loaded.run(loaded.queries(users, as_of), k=10)
    # The loaded DeepFM serves through its ONNX export (rank/lean.py): the same lists, scores
    # equal to float rounding; with the eager network, identical to the bit.
    assert loaded.ranker.lean is not None
    lists = ["query_id", "item_id", "rank", "source"]
    assert a.ranked.select(lists).equals(b.ranked.select(lists))
    np.testing.assert_allclose(b.ranked["score"], a.ranked["score"], rtol=1e-5, atol=1e-6)
    loaded.ranker.lean = None
    b = loaded.run(loaded.queries(users, as_of), k=10)
    assert a.ranked.equals(b.ranked)
    # The ranked list is the ranker's order (scored items by score; items it cannot judge
    # keep their recall position).
    assert a.scored is not None
    top = a.scored.filter(pl.col("score").is_not_null()).sort("query_id", "rank")
    assert top.height > 0
    ordered = top.group_by("query_id", maintain_order=True).agg(
        pl.col("score").is_sorted(descending=True)
    )
    assert ordered["score"].all()
    # A user with no history keeps the recall order (the ranker has nothing to judge them by).
    cold = rec.run(rec.queries(pl.Series(["nobody"]), as_of), k=10)
    merged = cold.candidates.filter(pl.col("merged_rank") <= 10)["item_idx"].to_list()
    assert cold.scored is not None
    assert cold.scored.filter(pl.col("rank") <= 10)["item_idx"].to_list() == merged
