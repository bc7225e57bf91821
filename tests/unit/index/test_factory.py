"""Config union, factory dispatch, the metric assertion and the recall helper."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from funnelrec.errors import ConfigError, FunnelrecError
from funnelrec.index import (
    AutoIndexConfig,
    ExactIndex,
    ExactIndexConfig,
    HNSWIndex,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndex,
    IVFIndexConfig,
    MetricMismatchError,
    assert_metric,
    build_index,
    calibrate_recall,
    index_from_state,
    needs_calibration,
    recall_at_k,
    recall_vs_exact,
)

ADAPTER: TypeAdapter[IndexConfig] = TypeAdapter(IndexConfig)


def test_union_dispatches_on_kind() -> None:
    assert ADAPTER.validate_python({"kind": "exact"}) == ExactIndexConfig()
    assert ADAPTER.validate_python({"kind": "hnsw", "M": 16}) == HNSWIndexConfig(M=16)
    assert ADAPTER.validate_python({"kind": "ivf", "nlist": 64}).nlist == 64


def test_unknown_kind_and_unknown_field_fail_loudly() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "annoy"})
    with pytest.raises(ValidationError, match="ef_serch"):
        ADAPTER.validate_python({"kind": "hnsw", "ef_serch": 64})
    config = HNSWIndexConfig()
    with pytest.raises(ValidationError, match="frozen"):
        config.M = 4  # type: ignore[misc]


def test_defaults() -> None:
    assert HNSWIndexConfig() == HNSWIndexConfig(M=32, ef_construction=200, ef_search=128)
    assert IVFIndexConfig().nlist is None


@pytest.mark.parametrize(
    ("config", "cls"),
    [
        (ExactIndexConfig(), ExactIndex),
        (HNSWIndexConfig(), HNSWIndex),
        (IVFIndexConfig(), IVFIndex),
    ],
)
def test_build_index_returns_the_configured_kind(config: IndexConfig, cls: type) -> None:
    index = build_index(config, "cosine")
    assert isinstance(index, cls)
    assert index.metric == "cosine" and index.config == config and len(index) == 0


def test_unknown_metric_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown index metric"):
        build_index(ExactIndexConfig(), "dot")  # type: ignore[arg-type]


def test_assert_metric() -> None:
    index = build_index(HNSWIndexConfig(), "ip")
    assert_metric(index, "ip")
    with pytest.raises(MetricMismatchError, match="trained with 'l2'") as info:
        assert_metric(index, "l2")
    # A user-facing config error (one CLI line) and a ValueError for library callers.
    assert isinstance(info.value, FunnelrecError) and isinstance(info.value, ValueError)
    with pytest.raises(MetricMismatchError):
        assert_metric(build_index(ExactIndexConfig(), "cosine"), "ip")


@pytest.mark.parametrize("config", [ExactIndexConfig(), HNSWIndexConfig(), IVFIndexConfig()])
def test_index_from_state_checks_the_training_metric(config: IndexConfig) -> None:
    index = build_index(config, "l2")
    index.build(np.eye(4, dtype=np.float32), np.arange(4))
    with pytest.raises(MetricMismatchError, match="'l2'"):
        index_from_state(config, "ip", index.state())


def test_index_from_state_checks_the_kind() -> None:
    index = build_index(ExactIndexConfig(), "l2")
    index.build(np.eye(4, dtype=np.float32), np.arange(4))
    with pytest.raises(ConfigError, match="'kind'"):
        index_from_state(HNSWIndexConfig(), "l2", index.state())


def test_recall_at_k() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, -1, -1], [-1, -1, -1, -1]])
    found = np.array([[4, 3, 9, 8], [6, 5, 7, -1], [1, 2, 3, 4]])
    assert recall_at_k(found, truth) == pytest.approx((0.5 + 1.0) / 2)
    assert recall_at_k(truth, truth) == 1.0


@pytest.mark.parametrize(("n_items", "cls"), [(50, ExactIndex), (51, IVFIndex)])
def test_an_auto_config_searches_small_catalogues_exactly(n_items: int, cls: type) -> None:
    config = AutoIndexConfig(exact_up_to=50)
    index = build_index(config, "cosine", n_items)
    assert isinstance(index, cls)
    vectors = np.random.default_rng(0).standard_normal((n_items, 4)).astype(np.float32)
    index.build(vectors, np.arange(n_items))
    restored = index_from_state(config, "cosine", index.state())  # what it chose, kept
    assert isinstance(restored, cls)
    np.testing.assert_array_equal(
        restored.search(vectors[:3], 5)[1], index.search(vectors[:3], 5)[1]
    )


def test_an_auto_config_needs_the_catalogue_size_and_a_known_saved_kind() -> None:
    with pytest.raises(TypeError, match="n_items"):
        build_index(AutoIndexConfig(), "ip")
    hnsw = build_index(HNSWIndexConfig(), "ip")
    hnsw.build(np.eye(4, dtype=np.float32), np.arange(4))
    with pytest.raises(ConfigError, match="'hnsw'"):
        index_from_state(AutoIndexConfig(), "ip", hnsw.state())
    assert ADAPTER.validate_python({"kind": "auto", "ann": {"kind": "ivf"}}).ann == IVFIndexConfig()


def _clustered(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    return (centres[rng.integers(0, 20, n)] + 0.5 * rng.standard_normal((n, dim))).astype(
        np.float32
    )


def test_calibration_raises_nprobe_until_the_target_recall_and_saves_it() -> None:
    x = _clustered(3000)
    ids = np.arange(3000)
    config = IVFIndexConfig(nlist=64, nprobe=1, target_recall=0.98)
    index = build_index(config, "ip")
    index.build(x, ids)
    assert needs_calibration(index) and index.nprobe == 1
    fixed = recall_vs_exact(index, x, ids, x[:100], 20)
    report = calibrate_recall(index, x, ids, x[:100], 20)
    assert fixed < 0.98 <= report["recall"]  # one list is not enough here; the chosen is
    assert report["nprobe"] == index.nprobe > 1 and report["nlist"] == 64
    assert recall_vs_exact(index, x, ids, x[:100], 20) == report["recall"]
    # The value chosen is saved: a restored index searches as many lists (whatever the
    # config's nprobe, which only starts a calibration).
    restored = index_from_state(config.model_copy(update={"nprobe": 2}), "ip", index.state())
    assert restored.nprobe == index.nprobe
    np.testing.assert_array_equal(restored.search(x[:5], 20)[1], index.search(x[:5], 20)[1])
    index.build(x, ids)  # new lists: back to the configured value until calibrated again
    assert index.nprobe == 1


def test_calibration_stops_at_every_list_and_needs_a_target() -> None:
    x = _clustered(800)
    ids = np.arange(800)
    index = build_index(IVFIndexConfig(nlist=8, nprobe=3, target_recall=1.0), "l2")
    index.build(x, ids)
    # Top-300 of 800 spans most lists: only all of them (exact search) find all of it.
    queries = _clustered(50, seed=1)
    report = calibrate_recall(index, x, ids, queries, 300)
    assert report["nprobe"] == 8 and report["recall"] == 1.0  # 3 -> 6 -> 8, capped at nlist
    for untargeted in (IVFIndexConfig(), HNSWIndexConfig(), ExactIndexConfig()):
        other = build_index(untargeted, "l2")
        other.build(x, ids)
        assert not needs_calibration(other)
        with pytest.raises(TypeError, match="no nprobe target"):
            calibrate_recall(other, x, ids, x[:5], 5)
