import numpy as np
import pytest

from funnelrec.recall.base import ChannelResult
from funnelrec.recall.merge import MergeConfig, candidates_to_matrix, merge_channels


def _result(name: str, rows: list[list[int]]) -> ChannelResult:
    idx = np.array(rows, dtype=np.int32)
    score = np.where(idx >= 0, -np.arange(idx.shape[1], dtype=np.float32), -np.inf)
    return ChannelResult(name, idx, score.astype(np.float32))


def test_quotas_dedupe_and_provenance() -> None:
    a = _result("a", [[1, 2, 3, 4]])
    b = _result("b", [[2, 5, 6, -1]])
    out = merge_channels([a, b], np.array([7]), MergeConfig(k=4, quotas={"a": 2, "b": 2}))
    # a takes its best two (1, 2); b's best two not taken: 5, 6 (2 is already a's).
    # Merged order interleaves by in-channel rank (5 and 6 are b's 2nd and 3rd).
    assert out["item_idx"].to_list() == [1, 2, 5, 6]
    assert out["source"].to_list() == ["a", "a", "b", "b"]
    assert out["sources"].to_list()[1] == ["a", "b"]
    assert out["merged_rank"].to_list() == [1, 2, 3, 4]
    assert out["query_id"].to_list() == [7] * 4


def test_fill_when_a_channel_is_short() -> None:
    a = _result("a", [[1, 2, 3, 4]])
    b = _result("b", [[9, -1, -1, -1]])
    out = merge_channels([a, b], np.array([0]), MergeConfig(k=4, quotas={"a": 1, "b": 3}))
    # quota pass: a -> 1, b -> 9; fill from a's remaining by rank: 2, 3.
    assert sorted(out["item_idx"].to_list()) == [1, 2, 3, 9]
    assert out.height == 4


def test_priority_follows_quota_order() -> None:
    a = _result("a", [[1]])
    b = _result("b", [[1]])
    out = merge_channels([a, b], np.array([0]), MergeConfig(k=2, quotas={"b": 1, "a": 1}))
    assert out["source"].to_list() == ["b"]
    assert out["sources"].to_list() == [["b", "a"]]


def test_unknown_quota_channel_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown channels"):
        merge_channels([_result("a", [[1]])], np.array([0]), MergeConfig(quotas={"zz": 1}))


def test_candidates_to_matrix_round_trip() -> None:
    a = _result("a", [[1, 2], [3, -1]])
    out = merge_channels([a], np.array([10, 11]), MergeConfig(k=2, quotas={"a": 2}))
    assert candidates_to_matrix(out, np.array([10, 11]), 3).tolist() == [[1, 2, -1], [3, -1, -1]]
