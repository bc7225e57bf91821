"""CPU per served request, in process: ``RecommendService.recommend`` on an artifact, one torch /
BLAS thread, no HTTP. Reports the process CPU time per request (p50/p90 over ``--requests``
random known users, after a warm-up) and the per-stage wall-time medians the service records.

HTTP load numbers on this shared 2-core box move by +-25% between identical runs
(``serve_load.py``); CPU time per request in one process is the steadier measure for comparing
two versions of the code: run this script with each version on its own artifact, alternating,
several times (see the closing note of the library-core issue for the exact commands).

    .venv/bin/python benchmarks/request_cpu.py --artifacts runs/demo/artifacts [--requests 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

from _common import render, write_json
from funnelrec.serve.service import RecommendService
from funnelrec.serve.settings import ServeSettings

try:  # the module that holds it moved with the library-core refactor
    from funnelrec.serve.loading import limit_threads
except ImportError:  # pragma: no cover - older checkouts, for before/after comparisons
    from funnelrec.serve.service import limit_threads  # type: ignore[attr-defined,no-redef]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--name", default="request_cpu")
    args = parser.parse_args()
    limit_threads(1)
    settings = ServeSettings(artifacts=args.artifacts, state_dir=Path(tempfile.mkdtemp()))
    service = RecommendService(settings)
    service.start()
    users = pl.read_parquet(args.artifacts / "vocab" / "users.parquet")["id"].to_list()
    rng = random.Random(0)
    as_of = service.model.cutoff + 1  # the artifact's clock: its time windows are populated
    for _ in range(20):  # warm-up: numba, caches
        service.recommend(rng.choice(users), args.k, timestamp=as_of)
    cpu_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    for _ in range(args.requests):
        start = time.process_time()
        out = service.recommend(rng.choice(users), args.k, timestamp=as_of)
        cpu_ms.append((time.process_time() - start) * 1e3)
        for stage, ms in out["timings_ms"].items():
            stages.setdefault(stage, []).append(ms)
    service.close()
    cpu_ms.sort()
    p50, p90 = statistics.median(cpu_ms), cpu_ms[int(0.9 * (len(cpu_ms) - 1))]
    per_stage = {stage: statistics.median(v) for stage, v in stages.items()}
    rows = [["cpu per request", p50, p90]] + [[s, v, ""] for s, v in per_stage.items()]
    render(f"request CPU ({args.requests} requests, 1 thread)", ["what", "p50 ms", "p90 ms"], rows)
    write_json(
        args.name,
        {"artifacts": str(args.artifacts), "cpu_ms": {"p50": p50, "p90": p90}, "stages": per_stage},
    )


if __name__ == "__main__":
    main()
