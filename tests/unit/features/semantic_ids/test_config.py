"""Semantic-id configs: clamping rules and clear errors for impossible settings."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from funnelrec.features.semantic_ids import HierarchicalConfig, RQKMeansConfig, SemanticIdConfig


def test_defaults_and_dispatch_by_kind() -> None:
    assert RQKMeansConfig().sizes_for(10_000) == (256, 256, 256)
    parsed = TypeAdapter(SemanticIdConfig).validate_python({"kind": "hierarchical"})
    assert isinstance(parsed, HierarchicalConfig) and parsed.levels == 3


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("rq_kmeans", {"codebook_size": 1}, "greater than or equal to 2"),
        ("rq_kmeans", {"levels": 0}, "greater than or equal to 1"),
        ("rq_kmeans", {"levels": 8, "codebook_size": 1024}, "64-bit"),
        ("rq_kmeans", {"codebooks": 3}, "Extra inputs"),
        ("hierarchical", {"n_clusters": (8, 8)}, "strictly increasing"),
        ("hierarchical", {"n_clusters": ()}, "positive cluster counts"),
        ("hierarchical", {"method": "centroid"}, "ward"),
        ("kmeans", {}, "does not match any of the expected tags"),
    ],
)
def test_bad_settings_fail_with_a_message(kind: str, settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(SemanticIdConfig).validate_python({"kind": kind, **settings})
