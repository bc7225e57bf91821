"""Data-parallel training with ``torch.distributed``: the process group, shards, gathers.

The design keeps a distributed run a *re-partition* of the single-process one, so that the
same global batch size and seed give the same model (within float tolerance):

* **Every worker builds every global batch** (same seed, same shuffles, same sampled
  negatives and id dropout) and keeps only its slice of rows (:func:`shard_bounds`,
  :func:`shard_rows`, or a model's own shard function such as the two-tower's, which also
  keeps only the candidate items its rows need). Building batches is cheap next to the
  forward/backward, and it avoids shipping data between workers.
* The model and the task run inside :class:`~torch.nn.parallel.DistributedDataParallel`
  (DDP), which averages the parameter gradients over workers. Each worker's loss is the mean
  over its rows, so before ``backward`` it is rescaled by ``rows_here * world / rows_global``:
  DDP's average of the rescaled losses is then the mean over the global batch, also when the
  last batch does not split evenly.
* Sparse gradients (``nn.Embedding(sparse=True)``, :mod:`funnelrec.train.optim`) are left
  out of DDP and all-reduced here after ``backward``, coalesced first: DDP's own sparse
  reduction double-counts one worker's rows when the embedding has a ``padding_idx`` (torch
  2.13, gloo; measured against single-process gradients), while a plain sparse all-reduce of a
  coalesced gradient is exact. NCCL has no sparse all-reduce, so sparse embeddings need gloo
  (on GPUs train with dense embeddings).
* Step metrics (the loss included) are reduced as row-weighted means, so every worker reports,
  and every callback (early stopping, keep-best) decides on, the global batch's numbers.
* :func:`gather_rows` all-gathers a tensor of rows (the two-tower's positive item vectors, so
  that every user sees the whole global batch's in-batch negatives) with gradient: its
  backward all-reduces the gradient of the gathered tensor and keeps this worker's rows, so the
  loss terms of *other* workers' users reach the local item tower too.

The backend follows the device: NCCL on CUDA, gloo on CPU (:func:`backend_for`). Processes are
started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_*``);
:func:`process_group` joins the group for a block of work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from funnelrec.train.optim import sparse_embedding_parameters

__all__ = [
    "DataParallelStep",
    "ShardFn",
    "WorkerInfo",
    "backend_for",
    "gather_rows",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "process_group",
    "rank",
    "reduce_row_means",
    "shard_bounds",
    "shard_rows",
    "world_size",
]

Batch = Mapping[str, Tensor]
ShardFn = Callable[[Batch, int, int], dict[str, Tensor]]
"""``shard(global_batch, rank, world) -> this worker's batch``."""


@dataclass(frozen=True)
class WorkerInfo:
    """Where this process stands: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device
    backend: str | None  # None: not distributed


def launched_by_torchrun() -> bool:
    """Whether the environment describes a multi-process launch (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """A process group with more than one worker is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sparse_gradients_reduce() -> bool:
    """Whether this process can train sparse embedding gradients: one process, or a process
    group on gloo (NCCL has no sparse all-reduce)."""
    return not is_distributed() or dist.get_backend() == "gloo"


def world_size() -> int:
    """Workers in the process group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This worker's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0, the only worker that writes files, artifacts and progress output."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones.

    Example:
        >>> backend_for(torch.device("cpu"))
        'gloo'
    """
    return "nccl" if device.type == "cuda" else "gloo"


def _worker_device(device_name: str) -> torch.device:
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if wants_cuda:
        # One GPU per worker; "cuda" without an index then means this worker's GPU.
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@contextlib.contextmanager
def process_group(device_name: str = "auto") -> Iterator[WorkerInfo]:
    """Join the ``torchrun`` process group for the block (a no-op outside ``torchrun``, or
    when a group is already initialised), and leave it afterwards.

    Args:
        device_name: ``auto`` / ``cuda`` use this worker's GPU (``LOCAL_RANK``) and NCCL
            when CUDA is available; otherwise the CPU and gloo.
    """
    device = _worker_device(device_name)
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield WorkerInfo(rank(), world_size(), device, None)
        return
    backend = backend_for(device)
    dist.init_process_group(backend)
    try:
        yield WorkerInfo(dist.get_rank(), dist.get_world_size(), device, backend)
    finally:
        dist.destroy_process_group()


def shard_bounds(n: int, worker: int, world: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of a global batch of ``n`` rows that ``worker`` of ``world`` takes:
    contiguous slices whose sizes differ by at most one.

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)]
        [(0, 2), (2, 5)]
    """
    return n * worker // world, n * (worker + 1) // world


def batch_rows(batch: Batch) -> int:
    """Rows of a batch: the first dimension of its first non-scalar tensor."""
    for value in batch.values():
        if value.ndim > 0:
            return int(value.shape[0])
    return 1


def shard_rows(batch: Batch, worker: int, world: int) -> dict[str, Tensor]:
    """This worker's rows of a batch whose tensors are all per row (the ranker's batches):
    every tensor with the batch's row count as first dimension is sliced, others are kept.

    Example:
        >>> shard_rows({"x": torch.arange(5)}, 1, 2)["x"].tolist()
        [2, 3, 4]
    """
    n = batch_rows(batch)
    lo, hi = shard_bounds(n, worker, world)
    return {
        key: value[lo:hi] if value.ndim > 0 and value.shape[0] == n else value
        for key, value in batch.items()
    }


class _GatherRows(torch.autograd.Function):
    """All-gather of row blocks of possibly different lengths, with gradient to the local one."""

    @staticmethod
    def forward(ctx: Any, local: Tensor, sizes: tuple[int, ...]) -> Tensor:
        me = dist.get_rank()
        longest = max(sizes)
        # all_gather needs equal shapes: pad each block to the longest, trim afterwards.
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        blocks = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(blocks, padded.contiguous())
        ctx.bounds = (sum(sizes[:me]), sum(sizes[: me + 1]))
        return torch.cat([block[:size] for block, size in zip(blocks, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        # Every worker's loss used this worker's rows: sum their gradients, keep ours.
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        lo, hi = ctx.bounds
        return total[lo:hi], None


def gather_rows(local: Tensor, sizes: tuple[int, ...] | None = None) -> Tensor:
    """Concatenate every worker's ``local`` rows in rank order, keeping the gradient path: the
    backward pass hands this worker the summed gradient of *all* workers' losses with
    respect to its own rows (the identity when not distributed).

    Args:
        local: ``[n_r, ...]`` this worker's rows.
        sizes: every worker's ``n_r`` when known (saves one collective), else gathered.
    """
    if not is_distributed():
        return local
    if sizes is None:
        count = torch.tensor([local.shape[0]], device=local.device)
        counts = [torch.empty_like(count) for _ in range(world_size())]
        dist.all_gather(counts, count)
        sizes = tuple(int(c) for c in counts)
    gathered: Tensor = _GatherRows.apply(local, tuple(sizes))
    return gathered


def reduce_row_means(
    values: Mapping[str, Tensor], rows_here: int, rows_global: int
) -> dict[str, float]:
    """Global row-weighted means of per-worker means (one all-reduce for all of them).

    A worker without rows contributes nothing (its means may be NaN).
    """
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    weighted = stacked * rows_here if rows_here else torch.zeros_like(stacked)
    if is_distributed():
        dist.all_reduce(weighted, op=dist.ReduceOp.SUM)
    means = (weighted / max(rows_global, 1)).tolist()
    return dict(zip(keys, means, strict=True))


class _ModelAndTask(nn.Module):
    """Model and loss as one module, so DDP averages the task's parameters' gradients too
    (learnt uncertainty weights) and sees the whole forward."""

    def __init__(self, model: nn.Module, task: Callable[..., Mapping[str, Tensor]]) -> None:
        super().__init__()
        self.model = model
        # An nn.Module task registers as a submodule; a plain callable is kept as is.
        self.task = task

    def forward(self, batch: Batch) -> Mapping[str, Tensor]:
        return self.task(self.model(batch), batch)


class DataParallelStep:
    """This worker's part of one training step on a global batch.

    Args:
        model / task: as :func:`funnelrec.train.loop.train` takes them (already on ``device``).
        shard: cuts this worker's batch out of a global one (default :func:`shard_rows`).
        device: the worker's device (CUDA: DDP pins the module to it).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Callable[..., Mapping[str, Tensor]],
        shard: ShardFn | None,
        device: torch.device,
    ) -> None:
        self.rank, self.world = rank(), world_size()
        self.shard = shard or shard_rows
        device_ids = [device] if device.type == "cuda" else None
        wrapped = _ModelAndTask(model, task)
        sparse_ids = {id(p) for p in sparse_embedding_parameters(model)}
        self.sparse = [p for p in wrapped.parameters() if id(p) in sparse_ids]
        if self.sparse and dist.get_backend() != "gloo":
            raise ValueError(
                "sparse embedding gradients need the gloo backend (NCCL has no sparse "
                "all-reduce): train with dense embeddings on GPUs"
            )
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
            wrapped, [name for name, p in wrapped.named_parameters() if id(p) in sparse_ids]
        )
        # find_unused_parameters: a batch may leave a parameter out of the graph (an
        # attribute embedding of a model without that field, a pooling branch).
        self.module = DistributedDataParallel(
            wrapped, device_ids=device_ids, find_unused_parameters=True
        )

    def reduce_sparse_gradients(self) -> None:
        """Average the sparse embedding gradients over workers (after ``backward``; DDP has
        averaged the dense ones)."""
        for param in self.sparse:
            grad = param.grad
            if grad is None:
                # Every worker must join every all-reduce: an empty gradient joins with no rows.
                rows = torch.zeros((1, 0), dtype=torch.long, device=param.device)
                values = param.new_zeros((0, *param.shape[1:]))
                grad = torch.sparse_coo_tensor(rows, values, param.shape)
            grad = grad.coalesce()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            param.grad = grad.coalesce() / self.world

    def feeds_every_worker(self, batch: Batch) -> bool:
        """Whether ``batch`` has a row for every worker. A smaller one (the last rows of an
        epoch) is dropped by every worker alike: an empty shard has a NaN mean loss that
        would poison the gradient all-reduce (the one difference from single-process).
        """
        return batch_rows(batch) >= self.world

    def losses(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """Forward this worker's shard of ``batch`` (which :meth:`feeds_every_worker`).

        Returns:
            The loss to call ``backward`` on (scaled so that DDP's gradient average is the
            gradient of the global batch's mean loss), and the global step metrics (row-
            weighted means over workers, the same on every worker).
        """
        rows_global = batch_rows(batch)
        if rows_global < self.world:
            raise ValueError(
                f"a global batch of {rows_global} rows cannot feed {self.world} workers"
            )
        local = self.shard(batch, self.rank, self.world)
        rows_here = shard_bounds(rows_global, self.rank, self.world)
        n_here = rows_here[1] - rows_here[0]
        out = self.module(local)
        metrics = reduce_row_means(out, n_here, rows_global)
        return out["loss"] * (n_here * self.world / rows_global), metrics
