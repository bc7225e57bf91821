"""Per-stage latency of single-user requests through the whole funnel."""

from __future__ import annotations

import time

import numpy as np

from funnelrec.pipeline.funnel import Funnel
from funnelrec.recall.base import Queries


def request_latency(
    recommender: Funnel, queries: Queries, n: int, k: int, rng: np.random.Generator
) -> dict[str, dict[str, float]]:
    """Per-stage latency of single-user requests (ms, p50/p99/mean over ``n`` random queries),
    as a service would see it (batch evaluation amortises per-call costs and would hide them).
    """
    if n <= 0 or len(queries) == 0:
        return {}
    rows = rng.choice(len(queries), min(n, len(queries)), replace=False)
    for _ in range(2):  # warm-up: JIT, caches, the ranker's log index (built on 2nd sight)
        recommender.run(queries.take(rows[:1]), k=k)
    per_stage: dict[str, list[float]] = {}
    for row in rows:
        start = time.perf_counter()
        rec = recommender.run(queries.take(np.array([row])), k=k)
        total = time.perf_counter() - start
        recall = sum(v for s, v in rec.timings_s.items() if s.startswith("recall."))
        for stage, seconds in {**rec.timings_s, "recall": recall, "total": total}.items():
            per_stage.setdefault(stage, []).append(seconds * 1000.0)
    return {
        stage: {
            "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)),
            "mean": float(np.mean(values)),
        }
        for stage, values in per_stage.items()
    }
