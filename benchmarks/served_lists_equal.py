"""Whether two request paths serve the same lists: this checkout against another checkout's
``src`` (``--reference``), or against itself with the ranker's request-shared form switched
off (``--full-network``, rank/lean_shared.py). Each side runs in a fresh interpreter on the
same artifact and answers the same requests (known users drawn with a fixed seed, plus two
unknown users) at the artifact's clock.

    .venv/bin/python benchmarks/served_lists_equal.py --artifacts /tmp/art500 \\
        (--reference OTHER/src | --full-network) [--requests 300] [--k 20]

Prints how many item lists differ, how many served items differ in any other response field
beyond the score, and the largest score difference; writes
benchmarks/results/served_lists_equal.json.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, run_child, write_json


def serve_all(artifacts: Path, requests: int, k: int, full_network: bool) -> list[list[dict]]:
    """Every request's served items, in this interpreter."""
    import polars as pl

    from funnelrec.serve.loading import limit_threads
    from funnelrec.serve.service import RecommendService
    from funnelrec.serve.settings import ServeSettings

    limit_threads(1)
    service = RecommendService(
        ServeSettings(artifacts=artifacts, state_dir=Path(tempfile.mkdtemp()))
    )
    service.start()
    if full_network:
        ranker: Any = service.model.recommender.ranker
        shared = getattr(ranker, "lean", None)
        if shared is None or not hasattr(shared, "full"):
            raise SystemExit("the artifact's ranker has no request-shared form")
        ranker.lean = shared.full
    users = pl.read_parquet(artifacts / "vocab" / "users.parquet")["id"].to_list()
    rng = random.Random(1)
    picks = [rng.choice(users) for _ in range(requests)] + ["unknown-1", "unknown-2"]
    at = service.model.cutoff + 1
    served = [service.recommend(user, k, timestamp=at)["items"] for user in picks]
    service.close()
    return served


def run_side(src: Path, args: argparse.Namespace, full_network: bool) -> list[list[dict]]:
    child = ["--artifacts", str(args.artifacts), "--requests", str(args.requests)]
    child += ["--k", str(args.k), *(["--full-network"] if full_network else [])]
    served: list[list[dict]] = run_child(src, __file__, child, "serving")
    return served


def compare(this: list[list[dict]], other: list[list[dict]]) -> dict[str, Any]:
    lists_differ = fields_differ = 0
    worst = 0.0
    for a, b in zip(this, other, strict=True):
        lists_differ += [x["item_id"] for x in a] != [x["item_id"] for x in b]
        for x, y in zip(a, b, strict=False):
            if x.get("score") is not None and y.get("score") is not None:
                worst = max(worst, abs(x["score"] - y["score"]))
            rest = {key: v for key, v in x.items() if key not in ("score", "probabilities")}
            fields_differ += rest != {key: v for key, v in y.items() if key in rest}
    return {
        "requests": len(this),
        "lists_differ": lists_differ,
        "items_with_other_fields_differing": fields_differ,
        "max_score_diff": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--reference", type=Path, help="src folder of the other checkout")
    side.add_argument("--full-network", action="store_true")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        served = serve_all(args.artifacts, args.requests, args.k, args.full_network)
        print(json.dumps(served))
        return
    if args.reference is None and not args.full_network:
        parser.error("give --reference SRC or --full-network")
    this = run_side(ROOT / "src", args, full_network=False)
    if args.reference is not None:
        other = run_side(args.reference, args, full_network=False)
    else:
        other = run_side(ROOT / "src", args, full_network=True)
    result = compare(this, other)
    print(
        f"{result['lists_differ']} of {result['requests']} item lists differ; "
        f"{result['items_with_other_fields_differing']} served items differ in another field; "
        f"largest score difference {result['max_score_diff']:.2e}"
    )
    write_json("served_lists_equal", {"args": {k: str(v) for k, v in vars(args).items()}, **result})


if __name__ == "__main__":
    main()
