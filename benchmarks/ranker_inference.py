"""The served ranker's forward pass: eager PyTorch against the two lean inference paths the
serving issue asked to compare, on one thread.

TorchScript: the artifact's network traced (``torch.jit.trace``), frozen and
``optimize_for_inference``-d. ONNX Runtime: the export the artifact is served with
(``funnelrec.rank.lean``; one intra-op thread). An MMoE also runs its request-shared form
(``funnelrec.rank.lean_shared``: the user and time columns' part of the first layers once per
batch, ONNX Runtime). All score the same random batches of 100, 200 and 500 candidates of one
request (inputs drawn from the feature spec's cardinalities, the request-shared columns copied
from row 0, as in a served request); reported: CPU ms per forward (``process_time``, median of
``--rounds`` rounds of ``--reps`` calls, alternating), the ratios, and the largest logit
difference to eager.

``--ops N`` also profiles the served ONNX form (the request-shared one when there is one) on
the 100-candidate batch with ONNX Runtime's own profiler and prints its N costliest nodes in
microseconds per forward: where the forward's time goes, operator by operator.

    .venv/bin/python benchmarks/ranker_inference.py --artifacts ART [--reps 200] [--ops 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from _common import render, write_json
from funnelrec.features.spec import FeatureSpec
from funnelrec.pipeline.persist import load_recommender
from funnelrec.rank.lean import OnnxForward, export_onnx
from funnelrec.rank.lean_shared import SharedColumns, SharedExport
from funnelrec.serve.loading import limit_threads

Batch = dict[str, torch.Tensor]


def _batch(spec: FeatureSpec, n: int, shared: SharedColumns | None) -> Batch:
    """``n`` random candidates of one request: the shared columns equal to row 0's."""
    g = torch.Generator().manual_seed(n)
    sparse = torch.stack(
        [torch.randint(0, c, (n,), generator=g) for c in spec.sparse_cardinalities], 1
    )
    dense = torch.randn(n, spec.n_dense, generator=g)
    if shared is not None:
        sparse[:, list(shared.sparse)] = sparse[:1, list(shared.sparse)]
        dense[:, list(shared.dense)] = dense[:1, list(shared.dense)]
    return {"sparse": sparse, "dense": dense}


def _cpu_ms(forward: Callable[[Batch], object], batch: Batch, reps: int) -> float:
    start = time.process_time()
    for _ in range(reps):
        forward(batch)
    return (time.process_time() - start) / reps * 1e3


def _op_profile(model: bytes, batch: Batch, runs: int) -> list[list[Any]]:
    """``[node, operator, us per forward, share]`` of ONNX Runtime's profile of ``runs``
    forwards of ``batch`` (one thread, the serving session's options), costliest first."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    feed = {"sparse": batch["sparse"].numpy(), "dense": batch["dense"].numpy()}
    outputs = [o.name for o in session.get_outputs()]
    for _ in range(runs):
        session.run(outputs, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            key = (event["name"].removesuffix("_kernel_time"), event["args"]["op_name"])
            per_node[key] = per_node.get(key, 0.0) + event["dur"] / runs
    total = sum(per_node.values())
    ranked = sorted(per_node.items(), key=lambda kv: -kv[1])
    return [[node, op, us, us / total] for (node, op), us in ranked] + [["all", "", total, 1.0]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=0, help="also profile N costliest nodes")
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
    shared, why = SharedExport.make(network, spec, tasks, ranker.features.request_shared())
    if shared is None:
        print(f"no request-shared form: {why}")
    rows, results = [], []
    with torch.inference_mode():
        for n in (100, 200, 500):
            batch = _batch(spec, n, shared.columns if shared is not None else None)
            with warnings.catch_warnings():  # the tracer's notes on Python-level checks
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(network, (batch,), strict=False)
            scripted = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            forwards: dict[str, Callable[[Batch], Any]] = {
                "eager": network,
                "torchscript": scripted,
                "onnx": lean,
            }
            if shared is not None:
                forwards["onnx_shared"] = shared.forward(lean)
            eager_out = network(batch)
            diff = {
                name: max(float((eager_out[t] - forward(batch)[t]).abs().max()) for t in tasks)
                for name, forward in forwards.items()
                if name != "eager"
            }
            for forward in forwards.values():  # warm-up
                _cpu_ms(forward, batch, 10)
            times: dict[str, list[float]] = {name: [] for name in forwards}
            for _ in range(args.rounds):
                for name, forward in forwards.items():
                    times[name].append(_cpu_ms(forward, batch, args.reps))
            ms = {name: statistics.median(times[name]) for name in forwards}
            e, s, o = ms["eager"], ms["torchscript"], ms["onnx"]
            sh = ms.get("onnx_shared", float("nan"))
            rows.append([n, e, s, o, sh, s / e, o / e, sh / o])
            rows[-1] += [diff["torchscript"], diff["onnx"], diff.get("onnx_shared", float("nan"))]
            results.append(
                {
                    "candidates": n,
                    "eager_ms": e,
                    "torchscript_ms": s,
                    "onnx_ms": o,
                    "onnx_shared_ms": ms.get("onnx_shared"),
                    "max_diff": diff["torchscript"],
                    "onnx_max_diff": diff["onnx"],
                    "onnx_shared_max_diff": diff.get("onnx_shared"),
                }
            )
    title = f"{type(network).__name__} forward, one thread ({args.artifacts})"
    columns = ["candidates", "eager ms", "TorchScript ms", "ORT ms", "ORT shared ms"]
    columns += ["TS / eager", "ORT / eager", "shared / ORT"]
    columns += ["TS max |diff|", "ORT max |diff|", "shared max |diff|"]
    render(title, columns, rows)
    report: dict[str, Any] = {"artifacts": str(args.artifacts), "results": results}
    if args.ops:
        served = shared.model if shared is not None else model
        columns_at = shared.columns if shared is not None else None
        ops = _op_profile(served, _batch(spec, 100, columns_at), args.reps)
        form = "request-shared" if shared is not None else "full"
        render(
            f"ONNX Runtime nodes of the {form} form, 100 candidates, us per forward",
            ["node", "operator", "us", "share"],
            [*ops[: args.ops], ops[-1]],
        )
        report["ops"] = [
            dict(zip(["node", "operator", "us", "share"], op, strict=True)) for op in ops
        ]
    write_json("ranker_inference", report)


if __name__ == "__main__":
    main()
