"""Pre-ranking: what cutting the ranker's candidates with the distilled pre-ranker costs in
quality and saves in ranker time, on the simulator.

One funnel is fitted (the defaults, with ``rank.prerank`` on; the guards off so that the ranker
itself is measured whatever its guard would say on a small log) and then served three ways on
the same held-out queries (the temporal split, same seed, so every comparison is paired):

* **all**: the ranker scores its ``rank.serve.score_k`` (200) merged candidates (today);
* **pre-ranker**: the pre-ranker picks ``keep`` of them for the ranker, the rest follow;
* **merge cut**: the ranker scores the first ``keep`` merged candidates (``score_k = keep``),
  the cheaper alternative the pre-ranker must beat;
* **pre-ranker, all merged**: the pre-ranker picks ``keep`` of every merged candidate
  (``score_k = recall.merge.k``, 300): the wider pool a pre-ranker makes affordable (both
  models were trained on the first 200 merged candidates of the window's queries).

Reported: candidate recall kept (of the held-out positives among the merged candidates the
ranker can judge (warm users, known items), the share that reaches the ranker), ranked
NDCG@10 / Recall@50 with the paired 95% bootstrap interval of the difference to "all", the
CPU time of the rank stage per single-user request (``process_time`` of the stage on the same
candidates, one thread; arms alternate per request) and per query in a batch of 256 queries,
the CPU time of the whole single-user request, and what the prerank guard decides on the
guard slice.
Ranked lists are scored at k = 50 (``eval.ks = [10, 20, 50]``): a request for more than
``score_k`` items would make the ranker score them all in every arm.

    .venv/bin/python benchmarks/prerank.py [--interactions 200000] [--quick] [--keep 100]
        [--ranker mmoe] [--model linear] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import polars as pl

from _common import load_tables, render, write_json
from funnelrec.config.experiment import ExperimentConfig
from funnelrec.eval.lists import evaluate_lists
from funnelrec.eval.protocol import split_and_index
from funnelrec.eval.queries import EvalQueries, build_eval_queries
from funnelrec.metrics.intervals import paired_difference
from funnelrec.pipeline.context import RequestContext
from funnelrec.pipeline.fit import fit_funnel
from funnelrec.pipeline.funnel import Funnel
from funnelrec.pipeline.guards import prerank_decision
from funnelrec.rank.prerank import PRERANK_COLUMN, PreRanker
from funnelrec.serve.loading import limit_threads

ARMS = ("all", "prerank", "merge_cut", "prerank_wide")
BATCH = 256
METRICS = ("ndcg@10", "recall@50")


def _config(args: argparse.Namespace) -> ExperimentConfig:
    prerank = {"enabled": True, "keep": args.keep, "model": args.model}
    return ExperimentConfig.model_validate(
        {
            "seed": 0,
            "rank": {"model": {"kind": args.ranker}, "prerank": prerank},
            "eval": {
                "ks": [10, 20, 50],
                "latency_requests": 0,
                "rerank_sweep_queries": 0,
                "interval_resamples": 0,
            },
            "guards": {"enabled": False},
        }
    )


class Arms:
    """Switches one fitted funnel between the three ways of serving it."""

    def __init__(self, funnel: Funnel, keep: int) -> None:
        assert funnel.ranker is not None and funnel.preranker is not None
        self.funnel = funnel
        self.preranker: PreRanker = funnel.preranker
        self.config = funnel.ranker.config
        self.configs = {
            "merge_cut": self._score_k(keep),
            "prerank_wide": self._score_k(funnel.config.recall.merge.k),
        }

    def _score_k(self, score_k: int) -> Any:
        serve = self.config.serve.model_copy(update={"score_k": score_k})
        return self.config.model_copy(update={"serve": serve})

    def use(self, arm: str) -> None:
        ranker = self.funnel.ranker
        assert ranker is not None
        self.funnel.set_preranker(self.preranker if arm.startswith("prerank") else None)
        ranker.config = self.configs.get(arm, self.config)  # type: ignore[misc]


def _truth(eval_queries: EvalQueries) -> pl.DataFrame:
    sizes = np.diff(eval_queries.truth_ptr)
    return pl.DataFrame(
        {
            "query_id": np.repeat(eval_queries.queries.query_id, sizes),
            "item_idx": eval_queries.truth_idx.astype(np.int32),
            "_truth": np.ones(int(sizes.sum()), dtype=bool),
        }
    ).unique(["query_id", "item_idx"])


def candidate_recall(arms: Arms, eval_queries: EvalQueries, keep: int, batch: int) -> dict:
    """Of the held-out positives among the merged candidates the ranker can judge (warm users,
    known items), the share that reaches the ranker in each arm. One pass of the widest arm:
    the pre-ranker's score of a candidate does not depend on the pool it is cut from."""
    arms.use("prerank_wide")
    score_k = arms.config.serve.score_k
    truth, queries = _truth(eval_queries), eval_queries.queries
    parts = []
    for start in range(0, len(queries), batch):
        rec = arms.funnel.run(queries.take(np.arange(start, min(start + batch, len(queries)))), 50)
        assert rec.scored is not None
        parts.append(rec.scored.filter(pl.col(PRERANK_COLUMN).is_not_null()))
    judged = pl.concat(parts)
    in_pool = pl.col("merged_rank") <= score_k
    by_prerank = pl.col(PRERANK_COLUMN).rank("ordinal", descending=True)
    pool = judged.filter(in_pool).with_columns(
        (by_prerank.over("query_id") <= keep).alias("prerank")
    )
    judged = judged.join(
        pool.select("query_id", "item_idx", "prerank"), on=["query_id", "item_idx"], how="left"
    )
    reach = judged.join(truth, on=["query_id", "item_idx"], how="inner").select(
        all=in_pool,
        prerank=pl.col("prerank").fill_null(False),
        merge_cut=pl.col("merged_rank") <= keep,
        prerank_wide=pl.col("score").is_not_null(),
    )
    out: dict[str, Any] = {"positives_judged": reach.height}
    out.update({arm: float(reach[arm].mean() or 0.0) for arm in ARMS})
    return out


def list_quality(
    arms: Arms, eval_queries: EvalQueries, train: Any, config: ExperimentConfig
) -> dict[str, Any]:
    """Ranked NDCG@10 / Recall@50 per arm and the paired difference of each to ``all``."""
    means: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, np.ndarray]] = {}
    for arm in ARMS:
        arms.use(arm)
        lists = evaluate_lists(arms.funnel, eval_queries, train, config)
        means[arm] = {m: lists.metrics["ranked"][m] for m in METRICS}
        per_query[arm] = {m: np.asarray(lists.per_query["ranked"][m]) for m in METRICS}
    diffs = {
        arm: {
            m: paired_difference(
                per_query[arm][m], per_query["all"][m], np.random.default_rng(0)
            ).as_dict()
            for m in METRICS
        }
        for arm in ARMS[1:]
    }
    return {"means": means, "paired_difference_to_all": diffs}


def batch_cpu(arms: Arms, eval_queries: EvalQueries, rounds: int = 3) -> dict[str, float]:
    """Median CPU ms per query of the rank stage on a batch of :data:`BATCH` warm queries
    (batch serving and offline evaluation, where the ranker's fixed cost per call is shared
    and its cost per candidate dominates)."""
    queries = eval_queries.queries
    warm = np.flatnonzero(queries.history_len > 0)[:BATCH]
    batch = queries.take(warm)
    candidates = arms.funnel.candidates(batch)[1]
    times: dict[str, list[float]] = {a: [] for a in ARMS}
    for _ in range(rounds):
        for arm in ARMS:
            arms.use(arm)
            start = time.process_time()
            arms.funnel._rank(batch, candidates, 10, RequestContext(), {})
            times[arm].append((time.process_time() - start) * 1e3 / max(warm.size, 1))
    return {arm: statistics.median(v) for arm, v in times.items()}


def request_cpu(arms: Arms, eval_queries: EvalQueries, n: int) -> dict[str, dict[str, float]]:
    """Median CPU ms per single-user request: the rank stage alone (``Funnel._rank`` on the
    same candidates in every arm, so only what the arms change is timed) and the whole
    ``Funnel.run``. Arms alternate per request, so load on the shared box hits all alike."""
    queries = eval_queries.queries
    warm = np.flatnonzero(queries.history_len > 0)
    rows = np.random.default_rng(0).choice(warm, min(n, warm.size), replace=False)
    rank_ms: dict[str, list[float]] = {a: [] for a in ARMS}
    total_ms: dict[str, list[float]] = {a: [] for a in ARMS}
    for i, row in enumerate([*rows[:5], *rows]):  # the first 5: warm-up
        one = queries.take(np.array([row]))
        candidates = arms.funnel.candidates(one)[1]
        for arm in ARMS[i % len(ARMS) :] + ARMS[: i % len(ARMS)]:
            arms.use(arm)
            start = time.process_time()
            arms.funnel._rank(one, candidates, 10, RequestContext(), {})
            rank = time.process_time() - start
            start = time.process_time()
            arms.funnel.run(one, k=10)
            total = time.process_time() - start
            if i >= 5:
                rank_ms[arm].append(rank * 1e3)
                total_ms[arm].append(total * 1e3)
    return {
        arm: {
            "rank_cpu_ms_p50": statistics.median(rank_ms[arm]),
            "request_cpu_ms_p50": statistics.median(total_ms[arm]),
        }
        for arm in ARMS
    }


def _rows(out: dict[str, Any], keep: int) -> list[list[Any]]:
    quality, cpu, recall = out["quality"], out["cpu"], out["candidate_recall"]

    def row(name: str, values: dict[str, float], diff: str | None = None) -> list[Any]:
        ratio = values["prerank"] / values["all"] if values["all"] else float("nan")
        return [name, *(values[a] for a in ARMS), ratio, diff or ""]

    rows = [row("candidate recall kept", recall)]
    for m in METRICS:
        iv = quality["paired_difference_to_all"]["prerank"][m]
        diff = f"{iv['mean']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]"
        rows.append(row(f"ranked {m}", {a: quality["means"][a][m] for a in ARMS}, diff))
    for key, name in (
        ("rank_cpu_ms_p50", "rank stage CPU ms"),
        ("request_cpu_ms_p50", "request CPU ms"),
    ):
        rows.append(row(name, {a: cpu[a][key] for a in ARMS}))
    rows.append(row(f"rank stage CPU ms / query (batch {BATCH})", out["batch_cpu"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="50k interactions, 100 requests")
    parser.add_argument("--keep", type=int, default=100)
    parser.add_argument("--ranker", default="mmoe")
    parser.add_argument("--model", default="linear", choices=["linear", "mlp"])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    if args.quick:
        args.interactions, args.requests = 50_000, 100
    limit_threads(1)
    config = _config(args)
    tables = load_tables("simulator", sim_interactions=args.interactions, seed=1)
    assert tables is not None
    start = time.perf_counter()
    split, train = split_and_index(tables.interactions, tables.items, tables.users, config)
    rng = np.random.default_rng(config.seed)
    funnel, report = fit_funnel(config, train, rng)
    funnel.ingest_items(tables.items)
    eval_queries = build_eval_queries(split, train, config, rng, funnel, tables.users)
    fit_s = time.perf_counter() - start
    assert report.rank is not None
    arms = Arms(funnel, args.keep)
    out: dict[str, Any] = {
        "interactions": args.interactions,
        "keep": args.keep,
        "score_k": config.rank.serve.score_k,
        "ranker": args.ranker,
        "model": args.model,
        "queries": len(eval_queries.queries),
        "fit_s": round(fit_s, 1),
        "prerank_fit": report.rank.stats.get("prerank"),
        "fit_prerank_s": report.timings_s.get("fit.prerank"),
        "candidate_recall": candidate_recall(arms, eval_queries, args.keep, 1024),
        "quality": list_quality(arms, eval_queries, train, config),
        "cpu": request_cpu(arms, eval_queries, args.requests),
        "batch_cpu": batch_cpu(arms, eval_queries),
    }
    arms.use("prerank")
    guarded = config.model_copy(
        update={"guards": config.guards.model_copy(update={"enabled": True})}
    )
    out["guard"] = prerank_decision(funnel, report.rank.data, guarded, rng).as_dict()
    merged = config.recall.merge.k
    columns = [
        "measure",
        f"all ({config.rank.serve.score_k})",
        f"pre-ranker {config.rank.serve.score_k}->{args.keep}",
        f"merge cut {args.keep}",
        f"pre-ranker {merged}->{args.keep}",
    ]
    render(
        f"Pre-ranking (simulator, {args.interactions:,} rows, {args.ranker} ranker, "
        f"{len(eval_queries.queries):,} test queries)",
        [*columns, "pre-ranker / all", "paired diff [95%]"],
        _rows(out, args.keep),
    )
    print(f"prerank guard on the guard slice: {out['guard']['reason']}")
    write_json("prerank_quick" if args.quick else "prerank", out)


if __name__ == "__main__":
    main()
