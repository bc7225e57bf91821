"""LightGBM objectives: query grouping for lambdarank, parameters, the score transform."""

from __future__ import annotations

import numpy as np
import pytest

from funnelrec.rank.gbdt_config import LightGBMConfig
from funnelrec.rank.gbdt_objective import (
    make_dataset,
    metric_key,
    objective_params,
    output_scores,
    query_groups,
)


def test_query_groups_sorts_interleaved_rows_into_runs_stably() -> None:
    group = np.array([30, 10, 30, 20, 10, 30, 20, 10])
    labels = np.array([0, 1, 1, 0, 0, 0, 1, 0], dtype=np.float64)
    groups = query_groups(group, labels)
    # Queries by ascending id; within a query, rows keep their original order.
    assert groups.rows.tolist() == [1, 4, 7, 3, 6, 0, 2, 5]
    assert groups.sizes.tolist() == [3, 2, 3]
    assert groups.n_dropped == 0
    runs = np.repeat(np.arange(3), groups.sizes)
    assert np.all(np.diff(group[groups.rows]) >= 0)
    assert len(set(zip(runs, group[groups.rows], strict=True))) == 3  # one id per run


def test_query_groups_drops_single_label_queries() -> None:
    group = np.array([1, 1, 2, 2, 3, 3, 3])
    labels = np.array([0, 0, 1, 1, 0, 1, 0], dtype=np.float64)  # 1: no positive, 2: all
    groups = query_groups(group, labels)
    assert groups.rows.tolist() == [4, 5, 6]
    assert groups.sizes.tolist() == [3]
    assert groups.n_dropped == 2


def test_query_groups_empty_and_mismatched() -> None:
    empty = query_groups(np.zeros(0, np.int64), np.zeros(0))
    assert empty.rows.size == 0 and empty.sizes.size == 0
    with pytest.raises(ValueError, match="same 1-D shape"):
        query_groups(np.arange(3), np.zeros(2))


def test_params_and_metric_follow_the_objective() -> None:
    binary = LightGBMConfig()
    rank = LightGBMConfig(objective="lambdarank", lambdarank_truncation_level=50, ndcg_eval_at=5)
    assert objective_params(binary) == {"objective": "binary", "metric": "binary_logloss"}
    params = objective_params(rank)
    assert params["objective"] == "lambdarank" and params["metric"] == "ndcg"
    assert params["eval_at"] == [5] and params["lambdarank_truncation_level"] == 50
    assert metric_key(rank) == "ndcg@5"
    assert binary.outputs_probabilities and not rank.outputs_probabilities


def test_output_scores_sigmoid_only_for_lambdarank() -> None:
    raw = np.array([-40.0, -2.0, 0.0, 0.5, 3.0])
    np.testing.assert_array_equal(output_scores(raw, "binary"), raw)
    scores = output_scores(raw, "lambdarank")
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.all(np.diff(scores) > 0)  # strictly monotone: the order is kept
    assert scores[2] == 0.5


def test_make_dataset_groups_lambdarank_rows() -> None:
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([1, 0, 0, 1, 0, 0], dtype=np.float64)
    group = np.array([2, 1, 2, 1, 3, 3])  # query 3 has no positive
    names, cats = ("a", "b"), ()
    ranked = make_dataset(x, y, group, "lambdarank", feature_names=names, categorical=cats)
    assert ranked is not None
    ranked.construct()
    assert ranked.get_group().tolist() == [2, 2]
    assert ranked.get_label().tolist() == [0.0, 1.0, 1.0, 0.0]
    no_pairs = np.zeros(6)
    assert (
        make_dataset(x, no_pairs, group, "lambdarank", feature_names=names, categorical=cats)
        is None
    )
    binary = make_dataset(x, y, group, "binary", feature_names=names, categorical=cats)
    assert binary is not None
    binary.construct()
    assert binary.get_group() is None and binary.num_data() == 6
