"""Configs and metrics.json as the flat key/values MLflow stores."""

from __future__ import annotations

import math

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.tracking.flatten import flat_metrics, flat_params, safe_key, text_tags
from funnelrec.tracking.records import config_params


def test_metric_keys_are_ones_mlflow_accepts() -> None:
    assert safe_key("slices/cold users/itemcf/ndcg@10") == "slices/cold users/itemcf/ndcg_at_10"
    assert safe_key("recall/caf\u00e9+new/hit@5") == "recall/caf__new/hit_at_5"
    assert len(safe_key("x" * 400)) == 250


def test_funnel_stages_guards_and_intervals_become_named_metrics() -> None:
    metrics = {
        "funnel": {
            "k": 10,
            "stages": [
                {"stage": "recall", "candidates": 450.9, "ndcg@10": None},
                {"stage": "rank", "candidates": 100, "ndcg@10": 0.16},
            ],
        },
        "guards": [
            {"stage": "rank", "kept": False, "value": 0.15, "diff_low": math.nan},
            {"stage": "rerank", "kept": True, "value": 0.14},
        ],
        "intervals": {"lists": {"merged": {"recall@10": [0.2, 0.3]}}},
        "split": {"kind": "temporal", "n_queries": 137},
    }
    flat = flat_metrics(metrics)
    assert flat == {
        "funnel/k": 10.0,
        "funnel/stages/recall/candidates": 450.9,
        "funnel/stages/rank/candidates": 100.0,
        "funnel/stages/rank/ndcg_at_10": 0.16,
        "guards/rank/kept": 0.0,
        "guards/rank/value": 0.15,
        "guards/rerank/kept": 1.0,
        "guards/rerank/value": 0.14,
        "intervals/lists/merged/recall_at_10/low": 0.2,
        "intervals/lists/merged/recall_at_10/high": 0.3,
        "split/n_queries": 137.0,
    }  # None, NaN and text are not metrics


def test_records_without_a_name_are_keyed_by_position() -> None:
    assert flat_metrics({"epochs": [{"loss": 0.5}, {"loss": 0.25}]}) == {
        "epochs/0/loss": 0.5,
        "epochs/1/loss": 0.25,
    }
    sweep = {"mmr": [{"param": 0.9, "ndcg@10": 0.1}, {"param": 1.0, "ndcg@10": 0.2}]}
    assert flat_metrics(sweep) == {"mmr/0.9/ndcg_at_10": 0.1, "mmr/1/ndcg_at_10": 0.2}


def test_guard_decisions_are_tags() -> None:
    guards = [{"stage": "rank", "kept": False, "reason": "not better: ..."}, {"stage": "rerank"}]
    assert text_tags({"guards": guards}) == {
        "guard.rank": "bypassed",
        "guard.rank.reason": "not better: ...",
        "guard.rerank": "bypassed",
    }


def test_config_params_are_the_dotted_paths_a_user_sets() -> None:
    params = config_params(ExperimentConfig())
    assert params["split.kind"] == "temporal"
    assert params["eval.ks"] == "[10, 20, 50, 100, 200]"
    assert params["recall.merge.quotas.itemcf"] == "100"
    assert not any(key.startswith("tracking.") for key in params)
    assert flat_params({"a": {"b": None, "c": {}}}) == {"a.b": "null", "a.c": "{}"}
