"""Served lists with the ranker's request-shared form (rank/lean_shared.py) against the full
network, on the same artifact: two services, one with the shared form switched off.

    .venv/bin/python benchmarks/lean_shared_equality.py --artifacts /tmp/art500 [--requests 300]

Prints how many of the item lists differ and the largest score difference, and writes
benchmarks/results/lean_shared_equality.json.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import polars as pl

from funnelrec.rank.lean_shared import SharedForward
from funnelrec.rank.ranker import Ranker
from funnelrec.serve.loading import limit_threads
from funnelrec.serve.service import RecommendService
from funnelrec.serve.settings import ServeSettings

RESULTS = Path(__file__).parent / "results" / "lean_shared_equality.json"


def _service(artifacts: Path) -> RecommendService:
    service = RecommendService(
        ServeSettings(artifacts=artifacts, state_dir=Path(tempfile.mkdtemp()))
    )
    service.start()
    return service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    limit_threads(1)
    shared, full = _service(args.artifacts), _service(args.artifacts)
    ranker = full.model.recommender.ranker
    if not isinstance(ranker, Ranker) or not isinstance(ranker.lean, SharedForward):
        raise SystemExit("the artifact's ranker has no request-shared form")
    ranker.lean = ranker.lean.full
    users = pl.read_parquet(args.artifacts / "vocab" / "users.parquet")["id"].to_list()
    rng = random.Random(1)
    picks = [rng.choice(users) for _ in range(args.requests)] + ["unknown-1", "unknown-2"]
    at = shared.model.cutoff + 1
    differ, worst = 0, 0.0
    for user in picks:
        a = shared.recommend(user, args.k, timestamp=at)["items"]
        b = full.recommend(user, args.k, timestamp=at)["items"]
        differ += [x["item_id"] for x in a] != [x["item_id"] for x in b]
        for x, y in zip(a, b, strict=False):
            if x.get("score") is not None and y.get("score") is not None:
                worst = max(worst, abs(x["score"] - y["score"]))
    result = {"requests": len(picks), "lists_differ": differ, "max_score_diff": worst}
    print(f"{differ} of {len(picks)} lists differ; largest score difference {worst:.2e}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
