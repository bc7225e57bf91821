"""Ranking model throughput: funnelrec's MMoE / DeepFM / DIN vs plain-PyTorch references.

Random data, 26 sparse fields of cardinality 10,000 each, 13 dense features, embedding dim 16,
batch 2048; DIN adds a behaviour sequence of length 50 (random lengths 10..50, zero-padded)
over the item field (0) with categories from field 1. Shapes, the same for both sides:

* MMoE: 8 experts [256, 128], a softmax gate and a [64] tower per task, 2 tasks;
* DeepFM: FM (first + second order, dense projected to one extra field) + deep [256, 128], 1 task;
* DIN: activation unit [64, 32] over [q, k, q - k, q * k] (q, k = [item, category], 32 wide),
  deep [256, 128], 1 task.

The reference is the textbook plain-PyTorch way: one ``nn.Embedding`` per field, an
``nn.Sequential`` MLP per expert/tower, Python loops over fields, experts and tasks, and the
DIN unit applied to the concatenated ``[B, L, 4D]`` tensor. funnelrec's models use one fused
embedding table, batched expert/gate/tower banks and a factorised first attention layer.
Parameter counts are reported for both and must match.

A train step is forward + BCE loss (funnelrec: its ``MultiTaskLoss``) + backward + Adam step;
inference is a forward pass in eval mode under ``torch.inference_mode``. Both sides use the
same pre-generated batches, ``torch``'s default thread count and a warm-up; then the two sides
alternate step by step (``--steps`` train steps, 3x as many inference passes each, the side
going first alternating), because the machine is shared and noisy. Reported: samples/s from the
median step time, the funnelrec/reference ratio of those, and the median of the per-pair
ratios (>= ~1 is the claim), plus in brackets the ratio of the fastest steps (the least
disturbed by other processes), plus every step time in the JSON.

    .venv/bin/python benchmarks/ranking_throughput.py [--steps 20] [--batch 2048]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from _common import console, render, write_json
from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import (
    DeepFMConfig,
    DINConfig,
    MMoEConfig,
    build_rank_model,
)
from funnelrec.rank.models.config import MLPConfig
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig

NAME = "ranking_throughput"
N_SPARSE, CARDINALITY, N_DENSE, EMBED_DIM, SEQ_LEN = 26, 10_000, 13, 16, 50
DEEP = (256, 128)
# Published yardsticks for this 2-core CPU (train samples/s, inference samples/s).
YARDSTICKS = {"mmoe": (15_000, 60_000), "deepfm": (35_000, 300_000), "din": (15_000, 80_000)}

Batch = dict[str, Tensor]


def make_spec(tasks: tuple[str, ...]) -> FeatureSpec:
    return FeatureSpec(
        tuple(f"f{i}" for i in range(N_SPARSE)),
        (CARDINALITY,) * N_SPARSE,
        N_DENSE,
        SEQ_LEN,
        0,
        1,
        tasks,
    )


def make_batches(spec: FeatureSpec, batch: int, n: int, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(10, SEQ_LEN + 1, (batch, 1), generator=g)
        real = torch.arange(SEQ_LEN)[None, :] < lengths
        seq_item = torch.randint(1, CARDINALITY, (batch, SEQ_LEN), generator=g) * real
        b: Batch = {
            "sparse": torch.randint(0, CARDINALITY, (batch, N_SPARSE), generator=g),
            "dense": torch.randn(batch, N_DENSE, generator=g),
            "seq_item": seq_item,
            "seq_category": torch.randint(1, CARDINALITY, (batch, SEQ_LEN), generator=g) * real,
            "seq_gap": torch.rand(batch, SEQ_LEN, generator=g) * real,
        }
        for task in spec.tasks:
            b[f"label_{task}"] = (torch.rand(batch, generator=g) < 0.2).float()
        out.append(b)
    return out


# --------------------------------------------------------------------------- references


def ref_mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class RefEmbeddings(nn.Module):
    """One nn.Embedding per field, concatenated."""

    def __init__(self, spec: FeatureSpec, dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, dim) for c in spec.sparse_cardinalities)

    def forward(self, sparse: Tensor) -> list[Tensor]:
        return [table(sparse[:, f]) for f, table in enumerate(self.tables)]


class RefMMoE(nn.Module):
    def __init__(self, spec: FeatureSpec, n_experts: int, expert: tuple[int, ...]) -> None:
        super().__init__()
        self.tasks = spec.tasks
        self.emb = RefEmbeddings(spec, EMBED_DIM)
        d = N_SPARSE * EMBED_DIM + N_DENSE
        self.experts = nn.ModuleList(ref_mlp([d, *expert]) for _ in range(n_experts))
        self.gates = nn.ModuleList(nn.Linear(d, n_experts) for _ in spec.tasks)
        self.towers = nn.ModuleList(
            nn.Sequential(nn.Linear(expert[-1], 64), nn.ReLU(), nn.Linear(64, 1))
            for _ in spec.tasks
        )

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        x = torch.cat([*self.emb(batch["sparse"]), batch["dense"]], dim=1)
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # [B, N, H]
        out = {}
        for task, gate, tower in zip(self.tasks, self.gates, self.towers, strict=True):
            w = torch.softmax(gate(x), dim=1).unsqueeze(-1)
            out[task] = tower((w * experts).sum(dim=1)).squeeze(-1)
        return out


class RefDeepFM(nn.Module):
    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.task = spec.tasks[0]
        self.emb = RefEmbeddings(spec, EMBED_DIM)
        self.first = RefEmbeddings(spec, 1)
        self.dense_vector = nn.Linear(N_DENSE, EMBED_DIM)
        self.dense_first = nn.Linear(N_DENSE, 1)
        self.deep = ref_mlp([N_SPARSE * EMBED_DIM + N_DENSE, *DEEP])
        self.head = nn.Linear(DEEP[-1], 1)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        sparse, dense = batch["sparse"], batch["dense"]
        embs = self.emb(sparse)
        first = torch.cat(self.first(sparse), dim=1).sum(1) + self.dense_first(dense).squeeze(1)
        v = torch.stack([*embs, self.dense_vector(dense)], dim=1)  # [B, F + 1, E]
        second = 0.5 * (v.sum(1).pow(2) - v.pow(2).sum(1)).sum(1)
        deep = self.head(self.deep(torch.cat([*embs, dense], dim=1))).squeeze(1)
        return {self.task: deep + first + second}


class RefDIN(nn.Module):
    def __init__(self, spec: FeatureSpec) -> None:
        super().__init__()
        self.task = spec.tasks[0]
        self.item, self.cat = spec.item_field, spec.category_field
        self.emb = RefEmbeddings(spec, EMBED_DIM)
        d = 2 * EMBED_DIM
        self.unit = nn.Sequential(ref_mlp([4 * d, 64, 32]), nn.Linear(32, 1))
        self.deep = ref_mlp([N_SPARSE * EMBED_DIM + d + N_DENSE, *DEEP])
        self.head = nn.Linear(DEEP[-1], 1)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        embs = self.emb(batch["sparse"])
        q = torch.cat([embs[self.item], embs[self.cat]], dim=1)  # [B, 2E]
        seq = batch["seq_item"]
        k = torch.cat(
            [self.emb.tables[self.item](seq), self.emb.tables[self.cat](batch["seq_category"])],
            dim=-1,
        )  # [B, L, 2E]
        qe = q.unsqueeze(1).expand_as(k)
        scores = self.unit(torch.cat([qe, k, qe - k, qe * k], dim=-1)).squeeze(-1)
        scores = scores * (seq != 0)
        pooled = (scores.unsqueeze(-1) * k).sum(1)
        x = torch.cat([*embs, pooled, batch["dense"]], dim=1)
        return {self.task: self.head(self.deep(x)).squeeze(1)}


# --------------------------------------------------------------------------- timing


def bce_sum(outputs: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
    loss = sum(
        nn.functional.binary_cross_entropy_with_logits(v, batch[f"label_{t}"])
        for t, v in outputs.items()
    )
    return {"loss": loss}  # type: ignore[dict-item]


class Side:
    """One model with its loss and Adam optimizer, stepping through fixed batches."""

    def __init__(self, model: nn.Module, task: Callable, batches: list[Batch]) -> None:
        self.model, self.task, self.batches = model, task, batches
        params = list(model.parameters())
        if isinstance(task, nn.Module):
            params += list(task.parameters())
        self.optimizer = torch.optim.Adam(params, lr=1e-3)
        self.i = 0

    def train_steps(self, steps: int) -> float:
        self.model.train()
        start = time.perf_counter()
        for _ in range(steps):
            batch = self.batches[self.i % len(self.batches)]
            self.i += 1
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task(self.model(batch), batch)["loss"]
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - start

    def infer_steps(self, steps: int) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(steps):
                self.model(self.batches[self.i % len(self.batches)])
                self.i += 1
        return time.perf_counter() - start


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def compare(
    name: str, ours: nn.Module, ref: nn.Module, spec: FeatureSpec, args: argparse.Namespace
) -> dict[str, Any]:
    """Per-step timings of both sides, interleaved step by step (alternating which side goes
    first), so that load from other processes hits both sides alike."""
    batches = make_batches(spec, args.batch, 3, seed=0)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=spec.tasks))
    sides = {"funnelrec": Side(ours, loss, batches), "reference": Side(ref, bce_sum, batches)}
    result: dict[str, Any] = {"params": {side: n_params(s.model) for side, s in sides.items()}}
    for mode in ("train", "infer"):
        seconds: dict[str, list[float]] = {side: [] for side in sides}
        for side in sides.values():  # warm-up
            getattr(side, f"{mode}_steps")(2)
        n_steps = args.steps if mode == "train" else 3 * args.steps
        for step in range(n_steps):
            order = list(sides) if step % 2 == 0 else list(reversed(sides))
            for key in order:
                seconds[key].append(getattr(sides[key], f"{mode}_steps")(1))
        for key in sides:
            result.setdefault(key, {})[mode] = args.batch / statistics.median(seconds[key])
            result[key][f"{mode}_best"] = args.batch / min(seconds[key])
            result[key][f"{mode}_step_ms"] = [round(1000 * x, 2) for x in seconds[key]]
        # Ratio of the medians, and the median of the per-pair ratios (robust to drifts).
        pairs = [r / o for o, r in zip(seconds["funnelrec"], seconds["reference"], strict=True)]
        result[f"{mode}_ratio"] = result["funnelrec"][mode] / result["reference"][mode]
        result[f"{mode}_pair_ratio"] = statistics.median(pairs)
        result[f"{mode}_best_ratio"] = (
            result["funnelrec"][f"{mode}_best"] / result["reference"][f"{mode}_best"]
        )
        console.print(
            f"{name} {mode}: funnelrec {result['funnelrec'][mode]:,.0f}/s, reference "
            f"{result['reference'][mode]:,.0f}/s, ratio {result[f'{mode}_ratio']:.2f} "
            f"(median pair ratio {result[f'{mode}_pair_ratio']:.2f}, "
            f"best-step ratio {result[f'{mode}_best_ratio']:.2f})"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument(
        "--steps", type=int, default=20, help="timed train steps per side (inference: 3x)"
    )
    parser.add_argument("--models", nargs="+", default=list(YARDSTICKS), choices=list(YARDSTICKS))
    args = parser.parse_args()
    torch.manual_seed(0)
    deep = MLPConfig(hidden=DEEP)
    one, two = make_spec(("click",)), make_spec(("click", "buy"))
    cases = {
        "mmoe": (
            build_rank_model(MMoEConfig(embed_dim=EMBED_DIM, n_experts=8, expert=deep), two),
            RefMMoE(two, 8, DEEP),
            two,
        ),
        "deepfm": (
            build_rank_model(DeepFMConfig(embed_dim=EMBED_DIM, deep=deep), one),
            RefDeepFM(one),
            one,
        ),
        "din": (
            build_rank_model(
                DINConfig(embed_dim=EMBED_DIM, deep=deep, attention=MLPConfig(hidden=(64, 32))),
                one,
            ),
            RefDIN(one),
            one,
        ),
    }
    results: dict[str, Any] = {}
    rows = []
    for name in args.models:
        ours, ref, spec = cases[name]
        res = compare(name, ours, ref, spec, args)
        results[name] = res
        if res["params"]["funnelrec"] != res["params"]["reference"]:
            console.print(f"[red]{name}: parameter counts differ {res['params']}[/red]")
        yard_train, yard_infer = YARDSTICKS[name]
        rows.append(
            [
                name,
                f"{res['params']['funnelrec']:,}",
                f"{res['funnelrec']['train']:,.0f}",
                f"{res['reference']['train']:,.0f}",
                f"{res['train_ratio']:.2f} ({res['train_best_ratio']:.2f})",
                f"{res['funnelrec']['infer']:,.0f}",
                f"{res['reference']['infer']:,.0f}",
                f"{res['infer_ratio']:.2f} ({res['infer_best_ratio']:.2f})",
                f"{yard_train:,} / {yard_infer:,}",
            ]
        )
    render(
        f"Ranking throughput, samples/s (batch {args.batch}, {N_SPARSE} fields x "
        f"{CARDINALITY:,}, E={EMBED_DIM}, median of {args.steps} interleaved steps, "
        f"{torch.get_num_threads()} threads)",
        [
            "model",
            "params",
            "train funnelrec",
            "train reference",
            "ratio (best)",
            "infer funnelrec",
            "infer reference",
            "ratio (best)",
            "yardstick train / infer",
        ],
        rows,
    )
    write_json(
        NAME,
        {
            "settings": {
                "batch": args.batch,
                "train_steps": args.steps,
                "infer_steps": 3 * args.steps,
                "load_average_after": list(os.getloadavg()),
                "n_sparse": N_SPARSE,
                "cardinality": CARDINALITY,
                "n_dense": N_DENSE,
                "embed_dim": EMBED_DIM,
                "seq_len": SEQ_LEN,
                "deep": list(DEEP),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
            "yardsticks": {k: {"train": v[0], "infer": v[1]} for k, v in YARDSTICKS.items()},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
