"""Recall evidence as ranking features: the ranked list with and without it, for a LightGBM
and the default MMoE ranker, on the simulator (defaults otherwise, but the guards are off:
this measures the ranker itself, whether or not its guard would keep it).

    .venv/bin/python benchmarks/recall_evidence.py [--interactions 60000]
"""

from __future__ import annotations

import argparse
import time

from _common import load_tables, render, write_json
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.eval.protocol import run_experiment


def _run(tables, kind: str, evidence: bool) -> dict:
    config = ExperimentConfig.model_validate(
        {
            "rank": {"model": {"kind": kind}, "features": {"recall_evidence": evidence}},
            "eval": {"latency_requests": 0, "rerank_sweep_queries": 0},
            "guards": {"enabled": False},
        }
    )
    start = time.perf_counter()
    metrics = run_experiment(tables.interactions, tables.items, tables.users, config).metrics
    lists = metrics["recall"]
    # metrics["rank"] holds one {auc, gauc, ...} dict per task; the first is the click task.
    tasks = [v for v in metrics.get("rank", {}).values() if isinstance(v, dict) and "gauc" in v]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "merged": {m: lists["merged"][m] for m in ("recall@10", "ndcg@10")},
        "ranked": {m: lists["ranked"][m] for m in ("recall@10", "ndcg@10")},
        "gauc": tasks[0]["gauc"] if tasks else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interactions", type=int, default=60_000)
    args = parser.parse_args()
    tables = load_tables("simulator", sim_interactions=args.interactions, seed=1)
    assert tables is not None
    results: dict[str, dict] = {}
    rows = []
    for kind in ("lightgbm", "mmoe"):
        for evidence in (False, True):
            out = _run(tables, kind, evidence)
            results[f"{kind}.{'evidence' if evidence else 'no_evidence'}"] = out
            rows.append(
                [
                    kind,
                    "yes" if evidence else "no",
                    out["merged"]["recall@10"],
                    out["ranked"]["recall@10"],
                    out["ranked"]["ndcg@10"],
                    out["gauc"],
                    out["seconds"],
                ]
            )
    columns = ["ranker", "evidence", "merged R@10", "ranked R@10", "ranked NDCG@10", "GAUC"]
    render(
        f"Recall evidence as ranking features (simulator, {args.interactions:,} rows)",
        [*columns, "seconds"],
        rows,
    )
    write_json("recall_evidence", {"interactions": args.interactions, "results": results})


if __name__ == "__main__":
    main()
