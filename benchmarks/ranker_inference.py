"""The served ranker's forward pass: eager PyTorch against the two lean inference paths the
serving issue asked to compare, on one thread.

TorchScript: the artifact's network traced (``torch.jit.trace``), frozen and
``optimize_for_inference``-d. ONNX Runtime: the export the artifact is served with
(``funnelrec.rank.lean``; one intra-op thread). All three score the same random batches of 100,
200 and 500 candidates (inputs drawn from the feature spec's cardinalities); reported: CPU ms
per forward (``process_time``, median of ``--rounds`` rounds of ``--reps`` calls, alternating),
the ratios to eager, and the largest logit difference.

    .venv/bin/python benchmarks/ranker_inference.py --artifacts ART [--reps 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from _common import render, write_json
from funnelrec.pipeline.persist import load_recommender
from funnelrec.rank.lean import OnnxForward, export_onnx
from funnelrec.serve.loading import limit_threads

Batch = dict[str, torch.Tensor]


def _batch(cardinalities: tuple[int, ...], n_dense: int, n: int) -> Batch:
    g = torch.Generator().manual_seed(n)
    sparse = [torch.randint(0, c, (n,), generator=g) for c in cardinalities]
    return {"sparse": torch.stack(sparse, 1), "dense": torch.randn(n, n_dense, generator=g)}


def _cpu_ms(forward: Callable[[Batch], object], batch: Batch, reps: int) -> float:
    start = time.process_time()
    for _ in range(reps):
        forward(batch)
    return (time.process_time() - start) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    limit_threads(1)
    ranker = load_recommender(args.artifacts).ranker
    if ranker is None or ranker.network is None or ranker.features is None:
        raise SystemExit(f"{args.artifacts}: no neural ranker to measure")
    network, spec, tasks = ranker.network.eval(), ranker.features.spec, ranker.tasks
    model, outcome = export_onnx(network, spec, tasks)
    if model is None:
        raise SystemExit(f"{args.artifacts}: no ONNX export ({outcome})")
    lean = OnnxForward(model, tasks)
    rows, results = [], []
    with torch.inference_mode():
        for n in (100, 200, 500):
            batch = _batch(spec.sparse_cardinalities, spec.n_dense, n)
            with warnings.catch_warnings():  # the tracer's notes on Python-level checks
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(network, (batch,), strict=False)
            scripted = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            eager_out = network(batch)
            diff = {
                name: max(float((eager_out[t] - out[t]).abs().max()) for t in tasks)
                for name, out in (("torchscript", scripted(batch)), ("onnx", lean(batch)))
            }
            forwards = {"eager": network, "torchscript": scripted, "onnx": lean}
            for forward in forwards.values():  # warm-up
                _cpu_ms(forward, batch, 10)
            times: dict[str, list[float]] = {name: [] for name in forwards}
            for _ in range(args.rounds):
                for name, forward in forwards.items():
                    times[name].append(_cpu_ms(forward, batch, args.reps))
            e, s, o = (statistics.median(times[name]) for name in forwards)
            rows.append([n, e, s, o, s / e, o / e, diff["torchscript"], diff["onnx"]])
            results.append(
                {
                    "candidates": n,
                    "eager_ms": e,
                    "torchscript_ms": s,
                    "onnx_ms": o,
                    "max_diff": diff["torchscript"],
                    "onnx_max_diff": diff["onnx"],
                }
            )
    title = f"{type(network).__name__} forward, one thread ({args.artifacts})"
    columns = ["candidates", "eager ms", "TorchScript ms", "ONNX Runtime ms"]
    columns += ["TS / eager", "ORT / eager", "TS max |diff|", "ORT max |diff|"]
    render(title, columns, rows)
    write_json("ranker_inference", {"artifacts": str(args.artifacts), "results": results})


if __name__ == "__main__":
    main()
