"""metrics.json ``intervals``: every list's recall/NDCG interval and the final list's paired
differences, from one set of query resamples."""

import numpy as np
import pytest

from funnelrec.eval.intervals import final_list, list_intervals, paired_metrics


def _per_query(n: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = rng.random(n)
    return {
        name: {
            "recall@10": np.clip(base * scale, 0, 1),
            "recall@50": np.clip(base * scale + 0.2, 0, 1),
            "ndcg@10": np.clip(base * scale * 0.8, 0, 1),
        }
        for name, scale in (("popular", 0.5), ("merged", 0.9), ("ranked", 1.0))
    }


def test_intervals_contain_the_means_and_name_the_final_list() -> None:
    per_query = _per_query(300)
    out = list_intervals(per_query, np.random.default_rng(0), level=0.95, n_boot=500)
    assert out["final"] == "ranked" and out["n_queries"] == 300 and out["level"] == 0.95
    for name, rows in per_query.items():
        for metric, values in rows.items():
            low, high = out["lists"][name][metric]
            assert low <= float(np.mean(values)) <= high
    assert set(out["paired"]) == {"popular", "merged"}
    diff = out["paired"]["popular"]["ndcg@10"]
    assert diff["mean"] == pytest.approx(
        np.mean(per_query["ranked"]["ndcg@10"] - per_query["popular"]["ndcg@10"])
    )
    assert 0 < diff["low"] <= diff["mean"] <= diff["high"]
    assert set(out["paired"]["merged"]) == {"ndcg@10", "recall@50"}


def test_intervals_shrink_with_more_queries() -> None:
    def width(n: int) -> float:
        out = list_intervals(_per_query(n), np.random.default_rng(0), level=0.95, n_boot=500)
        low, high = out["lists"]["ranked"]["ndcg@10"]
        return float(high - low)

    assert width(4000) < width(100) / 3


def test_paired_interval_of_a_list_against_itself_is_zero() -> None:
    per_query = _per_query(200)
    per_query["copy"] = dict(per_query["ranked"])
    out = list_intervals(per_query, np.random.default_rng(0), level=0.95, n_boot=200)
    for metric in ("ndcg@10", "recall@50"):
        assert out["paired"]["copy"][metric] == {"mean": 0.0, "low": 0.0, "high": 0.0}


def test_seeded_intervals_are_reproducible() -> None:
    a = list_intervals(_per_query(100), np.random.default_rng(3), level=0.9, n_boot=100)
    b = list_intervals(_per_query(100), np.random.default_rng(3), level=0.9, n_boot=100)
    assert a == b


def test_final_list_and_paired_metrics() -> None:
    assert final_list(["itemcf", "merged", "ranked", "reranked"]) == "reranked"
    assert final_list(["itemcf", "merged"]) == "merged"
    assert final_list(["itemcf"]) is None
    assert paired_metrics(["recall@10", "recall@50", "ndcg@10", "ndcg@50"]) == (
        "ndcg@10",
        "recall@50",
    )
    # without K = 10 / 50: NDCG at the smallest K, recall at the largest
    assert paired_metrics(["recall@5", "recall@20", "ndcg@5", "ndcg@20"]) == (
        "ndcg@5",
        "recall@20",
    )


def test_console_table_shows_every_list_and_flags_a_worse_final_list() -> None:
    from rich.console import Console

    from funnelrec.cli.report import interval_table

    per_query = _per_query(200)
    per_query["better"] = {m: np.clip(v + 0.3, 0, 1) for m, v in per_query["ranked"].items()}
    out = list_intervals(per_query, np.random.default_rng(0), level=0.95, n_boot=200)
    console = Console(width=200, record=True)
    means = {name: {m: float(np.mean(v)) for m, v in r.items()} for name, r in per_query.items()}
    console.print(interval_table(out, means))
    text = console.export_text()
    assert "95% bootstrap intervals over 200 queries" in text
    for name in per_query:
        assert name in text
    assert "NDCG@10" in text and "R@50" in text
    assert f"{out['paired']['better']['ndcg@10']['mean']:+.4f}" in text
    low, high = out["lists"]["popular"]["recall@50"]
    assert f"{means['popular']['recall@50']:.4f} [{low:.4f}, {high:.4f}]" in text
