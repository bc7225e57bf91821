"""CPU per served request, in process: ``RecommendService.recommend`` on an artifact, one
thread for torch, BLAS, numba and polars, no HTTP. Reports the process CPU time per request
(p50/p90 over ``--requests`` random known users, after a warm-up) and the per-stage wall-time
medians the service records.

HTTP load numbers on this shared 2-core box move by +-25% between identical runs
(``serve_load.py``); CPU time per request in one process is the steadier measure for comparing
two versions of the code. ``--reference SRC`` does that comparison in one run: it measures the
``src`` folder of another checkout (e.g. ``git worktree add /tmp/ref e83d286``, then
``--reference /tmp/ref/src``) and this checkout on the same artifact, alternating ``--rounds``
times in fresh processes, and reports both side by side with the ratio.

    .venv/bin/python benchmarks/request_cpu.py --artifacts runs/demo/artifacts [--requests 300]
    .venv/bin/python benchmarks/request_cpu.py --artifacts ART --reference /tmp/ref/src
"""

from __future__ import annotations

import os

# One thread per pool before the libraries start theirs: a served worker gets the same.
os.environ.setdefault("POLARS_MAX_THREADS", "1")

import argparse
import cProfile
import json
import pstats
import random
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, render, run_child, write_json


def measure(
    artifacts: Path,
    n_requests: int,
    k: int,
    profile: int = 0,
    sort: str = "tottime",
    batch: int = 1,
) -> dict:
    """Median CPU ms per request and per-stage wall ms medians, in this process; with
    ``batch`` > 1 the requests are answered ``batch`` at a time (``recommend_many``, what a
    served worker does with the requests that wait together) and a request's CPU is its
    batch's divided by ``batch``."""
    import polars as pl

    from funnelrec.serve.service import RecommendService
    from funnelrec.serve.settings import ServeSettings

    try:  # the module that holds it moved with the library-core refactor
        from funnelrec.serve.loading import limit_threads
    except ImportError:  # pragma: no cover - older checkouts, for before/after comparisons
        from funnelrec.serve.service import limit_threads  # type: ignore[attr-defined,no-redef]

    limit_threads(1)
    settings = ServeSettings(artifacts=artifacts, state_dir=Path(tempfile.mkdtemp()))
    service = RecommendService(settings)
    service.start()
    users = pl.read_parquet(artifacts / "vocab" / "users.parquet")["id"].to_list()
    rng = random.Random(0)
    as_of = service.model.cutoff + 1  # the artifact's clock: its time windows are populated

    def answer() -> list[dict]:
        if batch == 1:
            return [service.recommend(rng.choice(users), k, timestamp=as_of)]
        from funnelrec.serve.service import RecommendCall

        drawn = rng.sample(users, batch)  # one request per user, as a batch holds
        return service.recommend_many([RecommendCall(u, k, timestamp=as_of) for u in drawn])

    for _ in range(max(1, 20 // batch)):  # warm-up: numba, caches
        answer()
    cpu_ms: list[float] = []
    stages: dict[str, list[float]] = {}
    for _ in range(max(1, n_requests // batch)):
        start = time.process_time()
        answers = answer()
        cpu_ms.append((time.process_time() - start) * 1e3 / batch)
        for out in answers:
            for stage, ms in out["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
    if profile:  # where one request's time goes, function by function (self or cumulative)
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [answer() for _ in range(max(1, n_requests // batch))])
        pstats.Stats(profiler).sort_stats(sort).print_stats(profile)
    service.close()
    return {
        "cpu_ms": {"p50": _quantile(cpu_ms, 0.5), "p90": _quantile(cpu_ms, 0.9)},
        "cpu_p99_ms": _quantile(cpu_ms, 0.99),
        "stages": {stage: statistics.median(v) for stage, v in stages.items()},
        "stages_p99": {stage: _quantile(v, 0.99) for stage, v in stages.items()},
    }


def _quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank below) of ``values``; the median for 0.5."""
    if q == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def measure_in_subprocess(src: Path, args: argparse.Namespace, artifacts: Path) -> dict:
    """:func:`measure` in a fresh interpreter that imports ``funnelrec`` from ``src``."""
    child = ["--artifacts", str(artifacts), "--requests", str(args.requests), "--k", str(args.k)]
    child += ["--batch", str(args.batch)]
    result: dict = run_child(src, __file__, child, "measuring")
    return result


def _median_of(runs: list[dict]) -> dict:
    stages = sorted({s for run in runs for s in run["stages"]})
    return {
        "cpu_ms": {q: statistics.median(r["cpu_ms"][q] for r in runs) for q in ("p50", "p90")},
        "stages": {s: statistics.median(r["stages"].get(s, 0.0) for r in runs) for s in stages},
    }


def compare(args: argparse.Namespace) -> None:
    """This checkout and ``--reference``, alternating, each round in fresh processes."""
    sides: dict[str, list[dict]] = {"reference": [], "this": []}
    for _ in range(args.rounds):
        reference_artifacts = args.reference_artifacts or args.artifacts
        sides["reference"].append(measure_in_subprocess(args.reference, args, reference_artifacts))
        sides["this"].append(measure_in_subprocess(ROOT / "src", args, args.artifacts))
    ref, this = _median_of(sides["reference"]), _median_of(sides["this"])
    rows = [
        ["cpu per request (p50)", ref["cpu_ms"]["p50"], this["cpu_ms"]["p50"]],
        ["cpu per request (p90)", ref["cpu_ms"]["p90"], this["cpu_ms"]["p90"]],
    ]
    for stage in sorted(set(ref["stages"]) | set(this["stages"]), key=_stage_order):
        rows.append([stage, ref["stages"].get(stage, 0.0), this["stages"].get(stage, 0.0)])
    table = [[*r, (r[2] / r[1]) if r[1] else float("nan")] for r in rows]
    title = f"request CPU, median of {args.rounds} alternating rounds x {args.requests} requests"
    render(title, ["what (ms)", "reference", "this", "this / reference"], table)
    write_json(
        args.name,
        {
            "artifacts": str(args.artifacts),
            "reference_src": str(args.reference),
            "reference_artifacts": str(args.reference_artifacts or args.artifacts),
            "rounds": args.rounds,
            "reference": ref,
            "this": this,
            "runs": sides,
        },
    )


def _stage_order(stage: str) -> tuple[int, str]:
    order = ("recall", "merge", "evidence", "rank", "rerank", "store", "queue", "total")
    head = stage.split(".")[0]
    return (order.index(head) if head in order else len(order), stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--name", default="request_cpu")
    parser.add_argument(
        "--reference", type=Path, help="src folder of another checkout to compare against"
    )
    parser.add_argument(
        "--reference-artifacts",
        type=Path,
        help="the artifact the reference reads, when its config cannot read --artifacts' "
        "(e.g. a setting added since; default: --artifacts)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (--reference)")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also print the N top functions"
    )
    parser.add_argument(
        "--profile-sort",
        choices=("tottime", "cumulative"),
        default="tottime",
        help="order of --profile: own time, or time including the calls made",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="answer requests this many at a time (recommend_many), as a served worker "
        "answers the requests that wait together; CPU per request = batch CPU / batch",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.artifacts, args.requests, args.k, batch=args.batch)))
        return
    if args.reference is not None:
        compare(args)
        return
    if args.batch < 1:
        raise SystemExit(f"--batch must be >= 1, got {args.batch}")
    result = measure(
        args.artifacts, args.requests, args.k, args.profile, args.profile_sort, args.batch
    )
    cpu = result["cpu_ms"]
    rows = [["cpu per request", cpu["p50"], cpu["p90"], result["cpu_p99_ms"]]]
    stages = sorted(result["stages"].items(), key=lambda item: _stage_order(item[0]))
    rows += [[stage, ms, "", result["stages_p99"][stage]] for stage, ms in stages]
    render(
        f"request CPU ({args.requests} requests, {args.batch} at a time, 1 thread; "
        "stages: wall time)",
        ["what", "p50 ms", "p90 ms", "p99 ms"],
        rows,
    )
    write_json(args.name, {"artifacts": str(args.artifacts), **result})


if __name__ == "__main__":
    main()
