"""code_stats on constructed codes whose utilisation and collisions are known."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.features.semantic_ids import code_stats


def test_known_utilisation_collisions_and_buckets() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 0], [1, 0], [3, 2]])
    s = code_stats(codes, (4, 4))
    assert s.used == (3, 3)
    assert s.utilisation == (0.75, 0.75)
    assert s.distinct_prefixes == (3, 4)  # (0,0) (0,1) (1,0) (3,2)
    assert s.collision_rate == pytest.approx(3 / 6)  # the three (1, 0) items
    assert s.max_bucket == 3
    # Level 1 frequencies 2/6, 3/6, 1/6.
    p = np.array([2, 3, 1]) / 6
    assert s.perplexity[0] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert s.as_dict()["sizes"] == (4, 4)


def test_unique_codes_have_no_collisions_and_one_code_collides_everything() -> None:
    unique = code_stats(np.array([[0, 1], [1, 0], [0, 0]]), (2, 2))
    assert unique.collision_rate == 0.0 and unique.max_bucket == 1
    same = code_stats(np.zeros((4, 3), dtype=np.int64), (8, 8, 8))
    assert same.collision_rate == 1.0 and same.utilisation == (1 / 8,) * 3
    assert same.perplexity == (1.0, 1.0, 1.0)
    alone = code_stats(np.array([[2]]), (3,))
    assert alone.collision_rate == 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="no codes"):
        code_stats(np.zeros((0, 2), dtype=np.int64), (2, 2))
    with pytest.raises(ValueError, match="levels"):
        code_stats(np.zeros((3, 2), dtype=np.int64), (2, 2, 2))
