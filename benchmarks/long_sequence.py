"""Long behaviour sequences: DIN over all L behaviours vs SIM (hard/soft), ETA, SDIM and TWIN.

Random data: 8 sparse fields (item field 0 of 100,000 ids, category field 1 of 200, six more
of 10,000), 13 dense features, embedding dim 16, deep MLP [256, 128], 1 task. Every sample
has a behaviour sequence of length L (real lengths uniform in [L/2, L], the rest zero-padded)
with gaps uniform in log1p(seconds) [0, 17]. DIN's activation unit is [64, 32] over all L
behaviours; the long-sequence models keep their defaults (k = 50 searched behaviours, 2 heads,
32 gap buckets, a short-term DIN over the 50 most recent; ETA 64 bits; SDIM 16 rounds of 3
bits).

A train step is forward + BCE loss (``MultiTaskLoss``) + backward + Adam step; inference is a
forward pass in eval mode under ``torch.inference_mode``. Reported: samples/s from the median
of ``--steps`` timed steps (after one warm-up step each), and the peak memory of the train
steps: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only); on CPU the growth of the
process's peak resident set (``VmHWM`` after resetting it through ``/proc/self/clear_refs``,
minus ``VmRSS`` before; it includes allocator caching, so read it as an order of magnitude).
A length is skipped for a model, with a note, when the peak at the previous length scaled
linearly in L would exceed 70% of the available memory.

    .venv/bin/python benchmarks/long_sequence.py [--lengths 50 200 1000 5000 10000]
        [--batch 256] [--steps 3] [--models din sim_hard ...] [--device auto] [--threads 0]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter
from torch import Tensor

from _common import console, render, write_json
from funnelrec.features.spec import FeatureSpec
from funnelrec.rank.models import RankModelConfig, build_rank_model
from funnelrec.rank.task import MultiTaskLoss, MultiTaskLossConfig

NAME = "long_sequence"
CARDS = (100_000, 200, *([10_000] * 6))
N_DENSE, EMBED_DIM, DEEP = 13, 16, (256, 128)
MODELS = ("din", "sim_hard", "sim_soft", "eta", "sdim", "twin")
ADAPTER: TypeAdapter[RankModelConfig] = TypeAdapter(RankModelConfig)

Batch = dict[str, Tensor]


def make_config(kind: str) -> RankModelConfig:
    extra = {"attention": {"hidden": (64, 32)}} if kind == "din" else {}
    return ADAPTER.validate_python(
        {"kind": kind, "embed_dim": EMBED_DIM, "deep": {"hidden": DEEP}, **extra}
    )


def make_batch(length: int, size: int, seed: int, device: torch.device) -> Batch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(1, length // 2), length + 1, (size, 1), generator=g)
    real = torch.arange(length)[None, :] < lengths
    batch = {
        "sparse": torch.stack([torch.randint(1, c, (size,), generator=g) for c in CARDS], 1),
        "dense": torch.randn(size, N_DENSE, generator=g),
        "seq_item": torch.randint(1, CARDS[0], (size, length), generator=g) * real,
        "seq_category": torch.randint(1, CARDS[1], (size, length), generator=g) * real,
        "seq_gap": torch.rand(size, length, generator=g) * 17 * real,
        "label_click": (torch.rand(size, generator=g) < 0.2).float(),
    }
    return {k: v.to(device) for k, v in batch.items()}


# --------------------------------------------------------------------------- memory


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Peak memory growth of a block: CUDA allocated tensors, or the CPU process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.bytes = device, 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        # Hand freed heap pages back, so that earlier runs do not hide this one's growth.
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.start = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self.start
        else:
            self.bytes = _status_kib("VmHWM") * 1024 - self.start


# --------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(kind: str, length: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train and inference samples/s and the train steps' peak memory of one model at L."""
    device = args.device
    spec = FeatureSpec(
        tuple(f"f{i}" for i in range(len(CARDS))), CARDS, N_DENSE, length, 0, 1, ("click",)
    )
    batches = [make_batch(length, args.batch, seed, device) for seed in range(2)]
    model = build_rank_model(make_config(kind), spec).to(device)
    loss = MultiTaskLoss(MultiTaskLossConfig(tasks=spec.tasks))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def train_step(i: int) -> float:
        batch = batches[i % 2]
        sync(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss(model(batch), batch)["loss"].backward()
        optimizer.step()
        sync(device)
        return time.perf_counter() - start

    with PeakMemory(device) as memory:
        train = [train_step(i) for i in range(args.steps + 1)][1:]
    model.eval()
    infer = []
    with torch.inference_mode():
        for i in range(args.steps + 1):
            sync(device)
            start = time.perf_counter()
            model(batches[i % 2])
            sync(device)
            infer.append(time.perf_counter() - start)
    return {
        "train": args.batch / statistics.median(train),
        "infer": args.batch / statistics.median(infer[1:]),
        "peak_bytes": memory.bytes,
        "params": sum(p.numel() for p in model.parameters()),
        "train_step_ms": [round(1000 * t, 1) for t in train],
        "infer_step_ms": [round(1000 * t, 1) for t in infer[1:]],
    }


def run_model(kind: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every length for one model, skipping those the previous peak says will not fit."""
    out: list[dict[str, Any]] = []
    previous: tuple[int, int] | None = None
    for length in args.lengths:
        row: dict[str, Any] = {"model": kind, "L": length}
        budget = 0.7 * available_bytes(args.device)
        if previous is not None and previous[1] * length / previous[0] > budget:
            row["note"] = (
                f"skipped: ~{previous[1] * length / previous[0] / 2**30:.1f} GiB expected, "
                f"{budget / 2**30:.1f} GiB allowed"
            )
        else:
            try:
                row.update(measure(kind, length, args))
                previous = (length, max(int(row["peak_bytes"]), 1))
            except (RuntimeError, MemoryError) as error:  # CUDA OOM is a RuntimeError
                row["note"] = f"failed: {type(error).__name__}: {str(error)[:80]}"
        console.print(
            f"{kind} L={length}: "
            + (
                f"train {row['train']:,.0f}/s, infer {row['infer']:,.0f}/s, "
                f"peak {row['peak_bytes'] / 2**20:,.0f} MiB"
                if "train" in row
                else row["note"]
            )
        )
        out.append(row)
        gc.collect()
        if args.device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 1000, 5000, 10000])
    parser.add_argument("--batch", type=int, default=None, help="default 256 (CPU), 2048 (CUDA)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (train and infer)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    args.device = torch.device("cpu" if name == "auto" else name)
    args.batch = args.batch or (2048 if args.device.type == "cuda" else 256)
    torch.manual_seed(0)
    results = [row for kind in args.models for row in run_model(kind, args)]
    memory = "peak CUDA allocated" if args.device.type == "cuda" else "peak RSS growth"
    rows = []
    for r in results:
        if "train" not in r:
            rows.append([r["model"], r["L"], "-", "-", "-", r["note"]])
            continue
        mib = r["peak_bytes"] / 2**20
        rows.append(
            [r["model"], r["L"], f"{r['train']:,.0f}", f"{r['infer']:,.0f}", f"{mib:,.0f}", ""]
        )
    render(
        f"Long sequences on {args.device.type} (batch {args.batch}, median of {args.steps} "
        f"steps, {torch.get_num_threads()} threads)",
        ["model", "L", "train samples/s", "infer samples/s", f"{memory} (MiB)", "note"],
        rows,
    )
    write_json(
        NAME,
        {
            "settings": {
                "batch": args.batch,
                "steps": args.steps,
                "lengths": args.lengths,
                "device": str(args.device),
                "memory": memory,
                "cardinalities": list(CARDS),
                "n_dense": N_DENSE,
                "embed_dim": EMBED_DIM,
                "deep": list(DEEP),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "load_average_after": list(os.getloadavg()),
            },
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
