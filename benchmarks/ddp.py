"""Distributed (DDP) training throughput, and sparse vs dense embedding gradients.

Part ``ddp``: the two-tower (simulator) and the default ranking model (MMoE, synthetic
features) trained by 1 and by 2 ``torchrun`` workers at the same global batch and seed:
samples/s, final loss, and their ratios. Both runs launch through ``torchrun`` (1 worker =
the single-process path) with ``--threads`` torch threads per worker (default 1: on a shared
2-core box intra-op threads spin-wait badly, see funnelrec/train/threads.py).
On CPU the backend is gloo; ``--device cuda`` trains with NCCL, one GPU per worker (reported
as not run without CUDA).

Part ``sparse``: the two-tower on a large catalogue (the simulator's log with
``--catalogue`` items in the items table) with dense Adam over every embedding row vs
``sparse_embeddings=True`` (CatchUpAdam: only the batch's rows, with dense Adam's momentum
steps applied when a row is next read): fit time and the retrieval
quality (Recall@50 / NDCG@50 on the same temporal split and queries).

    .venv/bin/python benchmarks/ddp.py [--parts ddp sparse] [--sim-interactions 200000]
        [--rank-rows 200000] [--catalogue 70000] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import load_tables, render, write_json
from funnelrec.config.experiment import EvalConfig, ExperimentConfig, RecallConfig
from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.data.split import TemporalSplitConfig
from funnelrec.eval.protocol import run_experiment
from funnelrec.features.spec import FeatureSpec
from funnelrec.features.text import TextEncoderConfig
from funnelrec.rank.config import RankConfig
from funnelrec.rank.models import MMoEConfig, build_rank_model
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.two_tower import TowerConfig, TwoTower, TwoTowerConfig
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.distributed import is_main_process, process_group, world_size
from funnelrec.train.loop import train

SPEC = FeatureSpec(
    ("user", "item", "category", "context"), (5_000, 20_000, 100, 8), 8, 20, 1, 2, ("click", "buy")
)


# ------------------------------------------------------------------------ worker side
def ranker_rows(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Synthetic ranking samples: click on the item's parity and a dense feature."""
    rng = np.random.default_rng(seed)
    cards = SPEC.sparse_cardinalities
    sparse = np.stack([rng.integers(1, c, n) for c in cards], axis=1)
    dense = rng.normal(size=(n, SPEC.n_dense)).astype(np.float32)
    logit = np.where(sparse[:, 1] % 2 == 0, 1.0, -1.0) + dense[:, 0]
    click = rng.random(n) < 1 / (1 + np.exp(-logit))
    seq = rng.integers(0, cards[1], (n, SPEC.seq_len))
    return {
        "sparse": torch.from_numpy(sparse),
        "dense": torch.from_numpy(dense),
        "seq_item": torch.from_numpy(seq),
        "seq_category": torch.from_numpy(1 + seq % 99),
        "seq_gap": torch.zeros(n, SPEC.seq_len),
        "label_click": torch.from_numpy(click.astype(np.float32)),
        "label_buy": torch.from_numpy((click & (rng.random(n) < 0.2)).astype(np.float32)),
    }


def fit_ranker(rows: int, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    network = build_rank_model(MMoEConfig(), SPEC)
    task = MultiTaskLoss(MultiTaskLossConfig(tasks=("click", "buy")))
    data = ranker_rows(rows)
    size = 2048

    def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(epoch))
        return [{k: v[order[s : s + size]] for k, v in data.items()} for s in range(0, rows, size)]

    result = train(network, task, batches, TrainLoopConfig(epochs=1), device=device)
    return {"samples_per_s": result.samples_per_s, "final_loss": result.epochs[-1]["loss"]}


def fit_two_tower(interactions: int, device: torch.device) -> dict[str, float]:
    tables = load_tables("simulator", sim_interactions=interactions)
    assert tables is not None
    data = Dataset.build(tables.interactions, tables.items, tables.users)
    config = TwoTowerConfig(
        text=TextEncoderConfig(kind="hashing"),
        device=device.type,
        train=TrainLoopConfig(epochs=1, lr=2e-3),
    )
    model = TwoTower(config).fit(data, rng=np.random.default_rng(0))
    return {
        "samples_per_s": model.stats["train_samples_per_s"],
        "final_loss": model.stats["final_loss"],
    }


def worker(args: argparse.Namespace) -> None:
    """One torchrun worker: both workloads; rank 0 writes the numbers."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    with process_group(args.device) as info:
        out = {
            "two_tower": fit_two_tower(args.sim_interactions, info.device),
            "ranker": fit_ranker(args.rank_rows, info.device),
            "world_size": world_size(),
            "backend": info.backend,
        }
        if is_main_process():
            Path(args.worker).write_text(json.dumps(out))


# ------------------------------------------------------------------------ driver side
def launch(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`worker` as ``workers`` torchrun processes of ``--threads`` threads each."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        env = {**os.environ, "BENCH_THREADS": str(args.threads)}
        env["OMP_NUM_THREADS"] = env["BENCH_THREADS"]
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", str(workers), __file__, "--worker", str(out)]
        command += ["--device", args.device, "--sim-interactions", str(args.sim_interactions)]
        command += ["--rank-rows", str(args.rank_rows)]
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        result["wall_s"] = time.perf_counter() - start
        return result


def ddp_part(args: argparse.Namespace) -> dict[str, Any]:
    if args.device == "cuda" and not torch.cuda.is_available():
        render("DDP training", ["model", "result"], [["both", "not run: no CUDA"]])
        return {"cuda": "not run: no CUDA"}
    runs = {w: launch(w, args) for w in (1, 2)}
    rows = []
    for model in ("two_tower", "ranker"):
        one, two = runs[1][model], runs[2][model]
        rows.append(
            [
                model,
                f"{one['samples_per_s']:,.0f}",
                f"{two['samples_per_s']:,.0f}",
                two["samples_per_s"] / one["samples_per_s"],
                one["final_loss"],
                two["final_loss"],
                f"{abs(two['final_loss'] - one['final_loss']) / abs(one['final_loss']):.1e}",
            ]
        )
    backend = runs[2]["backend"]
    render(
        f"DDP training on {args.device} ({backend}, {args.threads} thread(s) per worker, "
        f"{os.cpu_count()} cores)",
        ["model", "1 worker sa/s", "2 workers sa/s", "speed-up", "loss 1w", "loss 2w", "rel diff"],
        rows,
    )
    if args.device == "cpu" and not torch.cuda.is_available():
        render("DDP training on cuda (NCCL)", ["model", "result"], [["both", "not run: no CUDA"]])
    return {"runs": {str(k): v for k, v in runs.items()}, "cuda": "not run: no CUDA"}


def sparse_part(args: argparse.Namespace) -> dict[str, Any]:
    """Dense Adam vs CatchUpAdam (and SparseAdam) embeddings on a ``--catalogue``-item
    catalogue."""
    base = SimulatorConfig.for_interactions(args.sim_interactions, seed=0)
    sim = simulate(base.model_copy(update={"n_items": args.catalogue}))
    text = TextEncoderConfig(kind="hashing")
    towers = {
        "dense": TowerConfig(sparse_embeddings=False),
        "sparse": TowerConfig(sparse_embeddings=True),
    }
    channels = {
        f"two_tower_{name}": TwoTowerConfig(text=text, towers=tower, device="cpu")
        for name, tower in towers.items()
    }
    config = ExperimentConfig(
        split=TemporalSplitConfig(),
        recall=RecallConfig(channels=channels, merge=MergeConfig(k=100)),
        rank=RankConfig(enabled=False),
        eval=EvalConfig(ks=(50,)),
    )
    result = run_experiment(sim.interactions, sim.items, sim.users, config)
    metrics, out, rows = result.metrics, {}, []
    for name in channels:
        channel = result.recommender.channels[name]
        assert isinstance(channel, TwoTower)
        entry = {
            "recall@50": metrics["recall"][name]["recall@50"],
            "ndcg@50": metrics["recall"][name]["ndcg@50"],
            "fit_s": metrics["timings_s"][f"fit.{name}"],
            "train_s": channel.stats["train_s"],
            "train_samples_per_s": channel.stats["train_samples_per_s"],
            "final_loss": channel.stats["final_loss"],
            "items": metrics["data"]["train_items"],
        }
        out[name] = entry
        rows.append([name, entry["items"], entry["train_s"], entry["fit_s"]])
        rows[-1] += [entry["recall@50"], entry["ndcg@50"], entry["final_loss"]]
    speed = out["two_tower_dense"]["train_s"] / out["two_tower_sparse"]["train_s"]
    render(
        f"Two-tower embeddings: dense Adam vs CatchUpAdam (train time ratio {speed:.2f}x)",
        ["channel", "items", "train s", "fit s", "Recall@50", "NDCG@50", "final loss"],
        rows,
    )
    return {"channels": out, "train_speedup": speed, "n_queries": metrics["split"]["n_queries"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["ddp", "sparse"], choices=["ddp", "sparse"])
    parser.add_argument("--sim-interactions", type=int, default=200_000)
    parser.add_argument("--rank-rows", type=int, default=200_000)
    parser.add_argument("--catalogue", type=int, default=70_000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    payload: dict[str, Any] = {"args": vars(args), "cores": os.cpu_count()}
    if "ddp" in args.parts:
        payload["ddp"] = ddp_part(args)
    if "sparse" in args.parts:
        payload["sparse"] = sparse_part(args)
    write_json("ddp", payload)


if __name__ == "__main__":
    main()
