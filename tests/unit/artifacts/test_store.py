"""Saved and reloaded recommenders give identical output; tampering is refused."""

from pathlib import Path

import numpy as np
import pytest

from funnelrec.artifacts import load_recommender, save_recommender
from funnelrec.config import load_config
from funnelrec.data.dataset import Dataset
from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.recommender import Recommender


@pytest.fixture
def saved(small_log, tmp_path: Path) -> tuple[Recommender, Path]:
    inter, items = small_log
    data = Dataset.build(inter, items)
    rec, _ = Recommender.fit(load_config(), data, rng=np.random.default_rng(0))
    save_recommender(rec, tmp_path / "art")
    return rec, tmp_path / "art"


def test_round_trip_identical(saved) -> None:
    rec, path = saved
    loaded = load_recommender(path)
    users = rec.user_vocab.ids.head(20)
    a = rec.recommend(rec.queries(users, 3_000_000), k=10).ranked
    b = loaded.recommend(loaded.queries(users, 3_000_000), k=10).ranked
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
