"""Index configs: the discriminated union, search-only knobs and IVF's list count."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from funnelrec.index.config import (
    ExactIndexConfig,
    HNSWIndexConfig,
    IndexConfig,
    IVFIndexConfig,
)

ADAPTER: TypeAdapter[IndexConfig] = TypeAdapter(IndexConfig)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"kind": "exact"}, ExactIndexConfig),
        ({"kind": "hnsw", "M": 16}, HNSWIndexConfig),
        ({"kind": "ivf", "nprobe": 8}, IVFIndexConfig),
    ],
)
def test_union_dispatches_on_kind(raw: dict, expected: type) -> None:
    assert type(ADAPTER.validate_python(raw)) is expected


def test_unknown_kind_and_extra_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "annoy"})
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "hnsw", "nprobe": 8})


def test_search_fields_are_the_search_time_knobs() -> None:
    assert ExactIndexConfig.search_fields == {"block_size"}
    assert HNSWIndexConfig.search_fields == {"ef_search"}
    assert IVFIndexConfig.search_fields == {"nprobe"}


def test_ivf_lists_are_capped_by_training_points() -> None:
    assert IVFIndexConfig().lists_for(10_000) == 256  # round(4 * sqrt(10k)) = 400 > 10k // 39
    assert IVFIndexConfig(nlist=64).lists_for(10_000) == 64
    assert IVFIndexConfig().lists_for(5) == 1
