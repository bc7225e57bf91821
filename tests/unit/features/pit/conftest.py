"""Shared data of the point-in-time feature tests: a simulated log with a fitted featurizer, a
hand-built log whose features are computed by hand, and an exact-equality check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.spec import RankFeatures
from funnelrec.rank.samples import SampleConfig, impression_samples

DAY = 86400
T0 = 1_700_000_000


def _arrays(f: RankFeatures) -> dict[str, np.ndarray]:
    out = dict(f.arrays())
    out.update(seq_item=f.seq_item, seq_category=f.seq_category, seq_gap=f.seq_gap)
    out.update(group=f.group, user_idx=f.user_idx)
    out.update({f"extra_{k}": v for k, v in f.extra.items()})
    return out


def _assert_identical(a: RankFeatures, b: RankFeatures) -> None:
    assert a.spec == b.spec
    arrays_a, arrays_b = _arrays(a), _arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for key, value in arrays_a.items():
        assert value.dtype == arrays_b[key].dtype, key
        np.testing.assert_array_equal(value, arrays_b[key], err_msg=key)


@pytest.fixture
def assert_identical() -> Callable[[RankFeatures, RankFeatures], None]:
    """Asserts two feature sets are bit-identical (spec, every array and its dtype)."""
    return _assert_identical


@pytest.fixture(scope="session")
def sim() -> tuple[Dataset, pl.DataFrame]:
    """A simulated Dataset (impressions, items with categories and created_at, users) and its
    impression samples."""
    data = simulate(SimulatorConfig.for_interactions(20_000))
    dataset = Dataset.build(data.interactions, data.items, data.users)
    return dataset, impression_samples(dataset.interactions, SampleConfig())


@pytest.fixture(scope="session")
def fitted(sim: tuple[Dataset, pl.DataFrame]) -> PointInTimeFeatures:
    """Default features fitted on ``sim`` (read-only: tests must not refit it)."""
    data, samples = sim
    return PointInTimeFeatures(PointInTimeConfig()).fit(data, samples, data.interactions)


def hand_log(positive_events: tuple[str, ...] | None = None) -> tuple[Dataset, pl.DataFrame]:
    """Two users, three items (a, b: category X; c: Y) and two samples of u0 at T0 + 5 d."""
    rows = [  # user, item, t, event
        ("u0", "a", T0, "impression"),
        ("u0", "a", T0 + 10, "click"),
        ("u0", "b", T0 + DAY, "impression"),
        ("u0", "c", T0 + 2 * DAY - 5, "impression"),
        ("u0", "c", T0 + 2 * DAY, "click"),
        ("u0", "c", T0 + 2 * DAY + 100, "order"),
        ("u1", "a", T0 + 3 * DAY, "click"),
        ("u0", "b", T0 + 5 * DAY, "impression"),  # the sample's own slate: not before it
        ("u0", "a", T0 + 5 * DAY, "click"),  # at the sample time: not before it
    ]
    inter = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "event"], orient="row")
    inter = inter.with_columns(pl.lit(1.0, dtype=pl.Float32).alias("value"))
    items = pl.DataFrame(
        {"item_id": ["a", "b", "c"], "category": ["X", "X", "Y"], "created_at": [T0 - 1000] * 3}
    )
    users = pl.DataFrame({"user_id": ["u0", "u1"], "gender": ["F", "M"]})
    data = Dataset.build(inter, items, users, positive_events=positive_events)
    t = T0 + 5 * DAY
    samples = pl.DataFrame(
        {
            "query_id": [0, 0],
            "user_idx": [0, 0],  # u0
            "item_idx": [0, 1],  # a, b
            "timestamp": [t, t],
            "label_click": [1.0, 0.0],
        }
    )
    return data, samples


@pytest.fixture
def hand() -> tuple[Dataset, pl.DataFrame]:
    """:func:`hand_log` with the default positive rule."""
    return hand_log()


@pytest.fixture
def hand_orders_only() -> tuple[Dataset, pl.DataFrame]:
    """:func:`hand_log` where only ``order`` counts as a positive."""
    return hand_log(positive_events=("order",))
