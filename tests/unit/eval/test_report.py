"""The run report on a metrics.json shaped like `funnelrec run` writes it (long floats,
missing values, a guard that was not judged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from funnelrec.eval.report import write_report
from funnelrec.eval.report_tables import guard_rows
from support.report_html import assert_readable_report, long_numbers, raw_missing

KS = (10, 20, 50, 100, 200)
LISTS = ("itemcf", "two_tower", "popular", "merged", "ranked", "reranked")


def metrics(rng: np.random.Generator) -> dict[str, Any]:
    def block(name: str) -> dict[str, float]:
        ks = [k for k in KS if name != "reranked" or k <= 100]  # re-ranked: rerank.pool long
        return {f"{m}@{k}": float(rng.random()) for k in ks for m in ("recall", "ndcg")}

    recall = {name: block(name) for name in LISTS}
    stage = {"candidates": 697.5704, "candidate_recall": 0.59200661, "p50_ms": 6.2383220029}
    point = {"ild@10": 0.3310599868, "ndcg@10": 0.0853857672}
    nan = float("nan")
    return {
        "split": {"kind": "temporal", "n_queries": 4085, "n_cold_user_queries": 1018},
        "data": {"train_users": 20000, "train_items": 23549, "train_positives": 92631},
        "recall": recall,
        "funnel": {
            "k": 10,
            "stages": [
                {"stage": "recall", **stage, "ndcg@10": None},
                {"stage": "rerank", **stage, "candidates": None, "ndcg@10": 0.0803111145},
            ],
            "channels": {"itemcf": {"share": 0.1517992656, "hit_share": 0.1891168599}},
        },
        "guards": [
            {
                "stage": "rank",
                "baseline": "merge order",
                "metric": "ndcg@10",
                "value": 0.151084,
                "baseline_value": 0.13796338,
                "diff_low": 0.004648902,
                "diff_high": 0.0197251511,
                "n_queries": 467,
                "kept": True,
                "detail": {"auc": 0.76616784, "n_positives": 119},
                "reason": "kept: ndcg@10 0.1511 vs merge order 0.1380, 95% interval [...]",
            },
            {
                "stage": "merge",
                "baseline": "",
                "metric": "",
                "value": nan,
                "baseline_value": nan,
                "diff_low": nan,
                "diff_high": nan,
                "n_queries": 0,
                "kept": True,
                "detail": {},
                "reason": "not judged: fewer than 10 window queries with a positive",
            },
        ],
        "slices": {
            "warm_users": {"n_queries": 3067, "n_truth": 8023, **recall},
            "cold_items": {"n_queries": 0, "n_truth": 0},
        },
        "intervals": {
            "level": 0.95,
            "n_queries": 4085,
            "final": "reranked",
            "lists": {n: {m: [v * 0.9, v * 1.1] for m, v in recall[n].items()} for n in LISTS},
        },
        "rerank": {
            "k": 10,
            "method": "mmr",
            "params": {"lambda": 0.85},
            "similarity": "embeddings",
            "sweep_queries": 1000,
            "baseline": point,
            "default": point,
            "tradeoff": {
                "mmr": [
                    {
                        "param": p,
                        "ild@10": 0.33 + (1 - p) / 2 + 1e-7,
                        "ndcg@10": 0.0853 - (1 - p) / 30,
                    }
                    for p in (1.0, 0.95, 0.9, 0.8)
                ],
            },
        },
        "latency_ms": {"rank": {"p50": 6.2444240029, "p99": 108.438131889, "mean": 12.6445394}},
    }


def test_the_report_reads_well_and_is_one_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(np.random.default_rng(0))))
    page = write_report(tmp_path).read_text()
    assert_readable_report(page)
    assert "<td>697.6</td>" in page and "<td>4,085</td>" not in page  # a count's mean: 1 decimal
    assert "[0.004649, 0.01973]" in page  # the guard's interval
    assert 'alt="recall plot"' in page and "Warm and cold slices" in page
    assert "the recall stage is the union" in page  # the dash in the funnel table explained
    for plot in ("tradeoff.png", "recall.png", "channels.png", "latency.png"):
        assert (tmp_path / "report" / plot).read_bytes()[:4] == b"\x89PNG"


def test_the_summary_says_when_the_held_out_users_were_sampled(tmp_path: Path) -> None:
    data = metrics(np.random.default_rng(0))
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    assert "seeded sample" not in write_report(tmp_path).read_text()  # an older metrics.json
    data["split"]["n_held_out_users"] = 120_000
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    assert "a seeded sample of 120,000: eval.max_queries" in write_report(tmp_path).read_text()


def test_the_checker_catches_raw_missing_values() -> None:
    page = "<td>0.1</td><td>nan</td><td>[None, 0.2]</td><td>null</td><td>no re-rank</td>"
    assert raw_missing(page) == ["nan", "[None, 0.2]", "null"]


def test_the_checker_catches_raw_floats() -> None:
    assert long_numbers("<td>697.5704 candidates</td><td>1,234,567</td>") == [
        ("697.5704 candidates", "697.5704")
    ]


def test_a_guard_row_keeps_the_verdict_and_moves_the_numbers_to_columns() -> None:
    row = guard_rows(metrics(np.random.default_rng(0))["guards"])[0]
    assert row["why"] == "kept" and row["95% interval of the difference"] == "[0.004649, 0.01973]"
