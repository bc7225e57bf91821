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
    index_from_state,
    recall_at_k,
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


@pytest.mark.parametrize(("n_items", "cls"), [(50, ExactIndex), (51, HNSWIndex)])
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
    ivf = build_index(IVFIndexConfig(), "ip")
    ivf.build(np.eye(4, dtype=np.float32), np.arange(4))
    with pytest.raises(ConfigError, match="'ivf'"):
        index_from_state(AutoIndexConfig(), "ip", ivf.state())
    assert ADAPTER.validate_python({"kind": "auto", "ann": {"kind": "ivf"}}).ann == IVFIndexConfig()
