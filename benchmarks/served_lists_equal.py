"""Whether two request paths serve the same lists: this checkout against another checkout's
``src`` (``--reference``), against itself with the ranker's request-shared form switched
off (``--full-network``, rank/lean_shared.py), or against itself answering the requests
``N`` at a time (``--batched N``: ``recommend_many``, what a served worker does with the
requests that wait together). Each side runs in a fresh interpreter on the same artifact and
answers the same requests (known users drawn with a fixed seed, plus two unknown users) at
the artifact's clock.

    .venv/bin/python benchmarks/served_lists_equal.py --artifacts /tmp/art500 \\
        (--reference OTHER/src | --full-network | --batched 4) [--requests 300] [--k 20]

Prints how many item lists differ, how many served items differ in a field that is not a
float (ranks, sources), and the largest difference of a float field (score, recall score,
task probabilities); writes benchmarks/results/served_lists_equal.json.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, run_child, write_json


def serve_all(
    artifacts: Path, requests: int, k: int, full_network: bool, batch: int = 1
) -> list[list[dict]]:
    """Every request's served items, in this interpreter (``batch`` at a time)."""
    import polars as pl

    from funnelrec.serve.loading import limit_threads
    from funnelrec.serve.service import RecommendService
    from funnelrec.serve.settings import ServeSettings

    if batch > 1:
        from funnelrec.serve.service import RecommendCall

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
    if batch == 1:
        served = [service.recommend(user, k, timestamp=at)["items"] for user in picks]
    else:
        served = []
        for start in range(0, len(picks), batch):
            calls = [RecommendCall(u, k, timestamp=at) for u in picks[start : start + batch]]
            served += [answer["items"] for answer in service.recommend_many(calls)]
    service.close()
    return served


def run_side(
    src: Path, args: argparse.Namespace, full_network: bool, batch: int = 1
) -> list[list[dict]]:
    child = ["--artifacts", str(args.artifacts), "--requests", str(args.requests)]
    child += ["--k", str(args.k), *(["--full-network"] if full_network else [])]
    child += ["--batch-size", str(batch)]
    served: list[list[dict]] = run_child(src, __file__, child, "serving")
    return served


FLOAT_FIELDS = ("score", "recall_score", "probabilities")


def _floats(item: dict) -> dict[str, float | None]:
    """The served item's float fields, task probabilities as ``p_<task>``."""
    out = {name: item.get(name) for name in FLOAT_FIELDS[:2]}
    out.update({f"p_{t}": p for t, p in (item.get("probabilities") or {}).items()})
    return out


def compare(this: list[list[dict]], other: list[list[dict]]) -> dict[str, Any]:
    lists_differ = fields_differ = 0
    worst = 0.0
    for a, b in zip(this, other, strict=True):
        lists_differ += [x["item_id"] for x in a] != [x["item_id"] for x in b]
        for x, y in zip(a, b, strict=False):
            floats_x, floats_y = _floats(x), _floats(y)
            for name, value in floats_x.items():
                if value is not None and floats_y.get(name) is not None:
                    worst = max(worst, abs(value - floats_y[name]))
            rest = {key: v for key, v in x.items() if key not in FLOAT_FIELDS}
            fields_differ += rest != {key: v for key, v in y.items() if key in rest}
    return {
        "requests": len(this),
        "lists_differ": lists_differ,
        "items_with_other_fields_differing": fields_differ,
        "max_float_diff": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--reference", type=Path, help="src folder of the other checkout")
    side.add_argument("--full-network", action="store_true")
    side.add_argument(
        "--batched", type=int, metavar="N", help="against itself answering N requests at a time"
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        served = serve_all(
            args.artifacts, args.requests, args.k, args.full_network, args.batch_size
        )
        print(json.dumps(served))
        return
    if args.reference is None and not args.full_network and args.batched is None:
        parser.error("give --reference SRC, --full-network or --batched N")
    if args.batched is not None and args.batched < 2:
        parser.error(f"--batched needs N >= 2, got {args.batched}")
    this = run_side(ROOT / "src", args, full_network=False)
    if args.reference is not None:
        other = run_side(args.reference, args, full_network=False)
    elif args.batched is not None:
        other = run_side(ROOT / "src", args, full_network=False, batch=args.batched)
    else:
        other = run_side(ROOT / "src", args, full_network=True)
    result = compare(this, other)
    print(
        f"{result['lists_differ']} of {result['requests']} item lists differ; "
        f"{result['items_with_other_fields_differing']} served items differ in another field; "
        f"largest float difference {result['max_float_diff']:.2e}"
    )
    write_json("served_lists_equal", {"args": {k: str(v) for k, v in vars(args).items()}, **result})


if __name__ == "__main__":
    main()
