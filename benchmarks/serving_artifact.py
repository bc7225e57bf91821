"""Build the artifact the serving benchmarks measure: the issue's setting on the simulator.

``recall.merge.k=500`` and ``rank.serve.score_k=500`` (500 merged candidates, all handed to the
pre-ranker, which picks the 100 the ranker scores) and the guards off, so that every stage
serves whatever its guard would say on a small log; the rest are the defaults. Then
``request_cpu.py`` and ``serve_load.py`` read it with ``--artifacts``.

    .venv/bin/python benchmarks/serving_artifact.py --out /tmp/art500 [--interactions 300000]
        [--set rank.model.kind=sim_hard --set rank.features.seq_len=1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from funnelrec.config import load_config
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.eval.protocol import run_experiment
from funnelrec.pipeline.persist import save_recommender

SETTING = [
    "recall.merge.k=500",
    "rank.serve.score_k=500",
    "guards.enabled=false",
    "eval.latency_requests=0",
    "eval.rerank_sweep_queries=0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interactions", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra config override (repeatable), e.g. rank.model.kind=sim_hard",
    )
    args = parser.parse_args()
    sim = simulate(SimulatorConfig.for_interactions(args.interactions, seed=args.seed))
    overrides = [*SETTING, *args.set]
    result = run_experiment(
        sim.interactions, sim.items, sim.users, load_config(overrides=overrides)
    )
    save_recommender(result.recommender, args.out)
    ndcg = result.metrics["recall"]["reranked"]["ndcg@10"]
    print(f"saved {args.out} (final NDCG@10 on the simulator's test users {ndcg:.4f})")


if __name__ == "__main__":
    main()
