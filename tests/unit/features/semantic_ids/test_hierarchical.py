"""Hierarchical tags: nested levels, clamping, sampling, new items, state."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.features.semantic_ids import (
    HierarchicalConfig,
    HierarchicalTags,
    prefix_keys,
    semantic_ids_from_state,
)


def _blobs(per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated groups of ``per`` points in 8 dimensions, and each point's group."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:4] * 10
    group = np.repeat(np.arange(4), per)
    return centres[group] + rng.standard_normal((4 * per, 8)).astype(np.float32) * 0.1, group


def test_levels_nest_and_the_coarse_level_finds_the_groups() -> None:
    x, group = _blobs()
    tags = HierarchicalTags(HierarchicalConfig(n_clusters=(4, 16))).fit(x)
    codes = tags.encode(x)
    assert codes.shape == (120, 2) and tags.sizes == (4, 16)
    # The first level is the four groups (up to naming).
    assert len({(g, c) for g, c in zip(group, codes[:, 0], strict=True)}) == 4
    # Every fine tag has exactly one coarse parent.
    parents = {}
    for coarse, fine in codes.tolist():
        assert parents.setdefault(fine, coarse) == coarse
    assert np.unique(prefix_keys(codes, tags.sizes)[:, 1]).shape[0] == np.unique(codes[:, 1]).size


def test_clamped_to_the_items_and_deterministic_with_a_sample() -> None:
    x, _ = _blobs(per=3)
    tags = HierarchicalTags(HierarchicalConfig(n_clusters=(2, 50))).fit(x)
    assert tags.sizes == (2, 12)
    cfg = HierarchicalConfig(n_clusters=(4, 8), max_fit_items=40, seed=1)
    big, _ = _blobs(per=50)
    a, b = HierarchicalTags(cfg).fit(big), HierarchicalTags(cfg).fit(big)
    assert np.array_equal(a.encode(big), b.encode(big))
    one = HierarchicalTags(HierarchicalConfig(n_clusters=(3, 5))).fit(big[:1])
    assert one.sizes == (1, 1) and one.encode(big[:2]).tolist() == [[0, 0], [0, 0]]


def test_new_items_join_their_nearest_cluster_and_state_round_trips() -> None:
    x, _ = _blobs()
    cfg = HierarchicalConfig(n_clusters=(4, 8))
    tags = HierarchicalTags(cfg).fit(x)
    new = x[[0, 40]] + 0.01
    assert tags.encode(new)[:, 0].tolist() == tags.encode(x[[0, 40]])[:, 0].tolist()
    restored = semantic_ids_from_state(cfg, tags.state())
    assert np.array_equal(restored.encode(x), tags.encode(x))
    with pytest.raises(ValueError, match="levels"):
        HierarchicalTags.from_state(HierarchicalConfig(n_clusters=(4,)), tags.state())
    with pytest.raises(RuntimeError, match="not fitted"):
        HierarchicalTags(cfg).encode(x)
