"""The one training loop every trainable component uses.

The loop knows nothing about recommendation. It is handed

* a ``model`` (``nn.Module``) whose ``forward(batch)`` returns ``dict[str, Tensor]``,
* a ``task`` (anything callable as ``task(outputs, batch) -> dict[str, Tensor]``) that turns
  the model outputs and the batch into a scalar ``"loss"`` plus any number of scalar metrics,
* ``batches``: a factory called once per epoch as ``batches(epoch)``, returning an iterable of
  batches (``dict[str, Tensor]``). A factory rather than a fixed iterable so that the caller
  can reshuffle, resample negatives or re-mine hard negatives with the current model between
  epochs,
* a :class:`TrainLoopConfig` (optimizer, learning rate, epochs, clipping, non-finite policy).
  Weight decay applies to weight matrices and embeddings only, never to biases, normalisation
  layers or the task's parameters (:func:`funnelrec.train.optim.make_optimizer`).

Every step runs ``forward -> task -> backward -> grad norm -> clip -> optimizer step``. Steps
whose loss or gradient norm is NaN/inf are skipped (parameters untouched) or raise
:class:`NonFiniteLossError`, per ``config.nonfinite``. Callbacks receive ``dict[str, float]``
after each step and each epoch and can stop training by setting ``state.stop``
(:class:`EarlyStopping` does this). Callbacks that need the model (diagnostics such as
:class:`funnelrec.train.health.HealthMonitor`) get it through ``on_train_begin``,
``on_after_backward`` (raw gradients, before clipping) and ``on_train_end``; the loop itself
only computes the global gradient norm it needs for clipping, so it stays as fast as before
when no callback asks for more.

Under ``torchrun`` (a process group of several workers, :mod:`funnelrec.train.distributed`)
the same call trains data-parallel: every worker draws the same global batches, keeps its
shard (``shard``; rows by default), runs model and task inside DDP and reports the global
batch's metrics, so the result matches single-process training at the same global batch and
seed within float tolerance. Only rank 0 logs progress.

Example:
    >>> import torch
    >>> class Lin(torch.nn.Module):
    ...     def __init__(self) -> None:
    ...         super().__init__()
    ...         self.w = torch.nn.Parameter(torch.zeros(1))
    ...     def forward(self, batch):
    ...         return {"pred": self.w * batch["x"]}
    >>> def mse(outputs, batch):
    ...     return {"loss": ((outputs["pred"] - batch["y"]) ** 2).mean()}
    >>> data = {"x": torch.ones(4), "y": torch.full((4,), 2.0)}
    >>> result = train(Lin(), mse, lambda epoch: [data], TrainLoopConfig(epochs=100, lr=0.1))
    >>> result.epochs[-1]["loss"] < 1e-3
    True
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from funnelrec.train.callbacks import Callback, EarlyStopping, KeepBest, LoopState
from funnelrec.train.config import TrainLoopConfig
from funnelrec.train.distributed import (
    DataParallelStep,
    ShardFn,
    gather_rows,
    is_distributed,
    is_main_process,
)
from funnelrec.train.optim import (
    clip_gradients,
    gradient_norm,
    make_optimizer,
    release,
    settle,
    share_lookups,
    trainable_parameters,
)
from funnelrec.train.seeding import deterministic_kernels

__all__ = [
    "Batch",
    "BatchFactory",
    "Callback",
    "EarlyStopping",
    "KeepBest",
    "LoopState",
    "NonFiniteLossError",
    "Task",
    "TrainResult",
    "resolve_device",
    "train",
]

logger = logging.getLogger(__name__)

Batch = Mapping[str, Tensor]
Task = Callable[[Mapping[str, Tensor], Batch], Mapping[str, Tensor]]
BatchFactory = Callable[[int], Iterable[Batch]]


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient norm became NaN/inf (``nonfinite="raise"``, or too many skips)."""


@dataclass
class TrainResult:
    """What happened: per-epoch mean metrics and totals.

    Attributes:
        epochs: one ``dict[str, float]`` per finished epoch (means of the step metrics plus
            ``samples_per_s`` and ``seconds``, plus whatever ``evaluate`` returned).
        steps / samples: optimizer steps taken and samples seen (skipped steps excluded).
        seconds: wall time of the whole run.
        skipped_steps: steps skipped because of a non-finite loss or gradient.
        clipped_steps: steps whose gradients were rescaled by clipping.
        stopped_early: a callback set ``state.stop``.
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0
    skipped_steps: int = 0
    clipped_steps: int = 0
    stopped_early: bool = False

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available else ``cpu``; anything else as given.

    Example:
        >>> resolve_device("cpu").type
        'cpu'
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available")
    return device


def _to_device(batch: Batch, device: torch.device) -> dict[str, Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def _batch_size(batch: Mapping[str, Tensor]) -> int:
    for value in batch.values():
        if value.ndim > 0:
            return int(value.shape[0])
    return 1


def train(
    model: nn.Module,
    task: Task,
    batches: BatchFactory,
    config: TrainLoopConfig,
    *,
    device: torch.device | str = "cpu",
    callbacks: Sequence[Callback] = (),
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None = None,
    shard: ShardFn | None = None,
) -> TrainResult:
    """Train ``model`` in place.

    Args:
        model: ``forward(batch) -> dict[str, Tensor]``; moved to ``device``.
        task: ``task(outputs, batch) -> dict[str, Tensor]`` with a scalar ``"loss"``; other
            scalar entries are reported as metrics. A task that is an ``nn.Module`` has its
            parameters optimised with the model's (and is moved to ``device``).
        batches: ``batches(epoch)`` -> iterable of ``dict[str, Tensor]`` (moved to ``device``
            here); the first tensor dimension of the first non-scalar entry is the batch size.
        config: optimizer and loop settings.
        device: where to train.
        callbacks: :class:`Callback` hooks (train begin/end, after backward, step, epoch);
            any may set ``state.stop``.
        evaluate: optional ``evaluate(model, epoch) -> dict[str, float]`` run (in eval mode,
            without gradients) after each epoch; its metrics join the epoch metrics, so an
            :class:`EarlyStopping` can monitor them.
        shard: when distributed, cuts a worker's batch out of a global one
            (default: :func:`funnelrec.train.distributed.shard_rows`); unused otherwise.

    Returns:
        A :class:`TrainResult`; the model is left in eval mode.

    The reported ``grad_norm`` is the global L2 norm before clipping; the gradients are
    rescaled to ``config.clip_grad_norm`` only when that norm exceeds it.

    Raises:
        NonFiniteLossError: non-finite loss/gradient with ``nonfinite="raise"``, or more than
            ``max_consecutive_skips`` in a row.
    """
    device = torch.device(device)
    model.to(device)
    if isinstance(task, nn.Module):
        task.to(device)
        task.train()
    optimizer = make_optimizer(model, config, task)
    params = trainable_parameters(model, task)
    parallel = DataParallelStep(model, task, shard, device) if is_distributed() else None
    if parallel is not None:
        share_lookups(optimizer, gather_rows)
    state = LoopState(config=config)
    result = TrainResult()
    start = time.perf_counter()
    for callback in callbacks:
        callback.on_train_begin(state, model)
    try:
        with deterministic_kernels():  # the same data and seed give the same model
            _run_epochs(
                model,
                task,
                batches,
                config,
                device,
                callbacks,
                evaluate,
                optimizer,
                params,
                state,
                result,
                parallel,
            )
    except NonFiniteLossError as error:
        state.error = str(error)
        settle(optimizer)
        _finish(model, state, result, start, callbacks)
        raise
    finally:
        release(optimizer)
    _finish(model, state, result, start, callbacks)
    return result


def _finish(
    model: nn.Module,
    state: LoopState,
    result: TrainResult,
    start: float,
    callbacks: Sequence[Callback],
) -> None:
    model.eval()
    result.steps = state.step
    result.samples = state.samples
    result.skipped_steps = state.skipped_steps
    result.clipped_steps = state.clipped_steps
    result.stopped_early = state.stop
    result.seconds = time.perf_counter() - start
    for callback in callbacks:
        callback.on_train_end(state, model)


class _NonFiniteGuard:
    """Counts consecutive skipped steps and applies ``config.nonfinite``."""

    def __init__(self, config: TrainLoopConfig) -> None:
        self.config = config
        self.consecutive = 0

    def skip(self, message: str) -> None:
        """Record one skipped step; raise when the policy or the skip budget says so."""
        self.consecutive += 1
        if (
            self.config.nonfinite == "raise"
            or self.consecutive >= self.config.max_consecutive_skips
        ):
            raise NonFiniteLossError(message)
        logger.warning("%s: step skipped", message)


@dataclass
class _EpochTotals:
    """Running sums of one epoch's step metrics (taken steps only)."""

    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    samples: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, metrics: Mapping[str, float], size: int) -> None:
        self.steps += 1
        self.samples += size
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def means(self, epoch: int) -> dict[str, float]:
        """Per-step means plus ``epoch``, ``seconds`` and ``samples_per_s``."""
        seconds = time.perf_counter() - self.start
        out = {key: value / max(self.steps, 1) for key, value in self.sums.items()}
        out["epoch"] = float(epoch)
        out["seconds"] = seconds
        out["samples_per_s"] = self.samples / seconds if seconds > 0 else 0.0
        return out


def _backward(
    loss: Tensor,
    model: nn.Module,
    params: list[nn.Parameter],
    max_norm: float | None,
    state: LoopState,
    callbacks: Sequence[Callback],
    finite: bool | None = None,
    parallel: DataParallelStep | None = None,
) -> float:
    """Backward, global pre-clip gradient norm, ``on_after_backward`` hooks, then clipping.

    ``finite`` overrides the finiteness test of ``loss`` (distributed: the global loss's,
    so that every worker skips the same steps and none waits in the all-reduce).

    Returns:
        The global gradient L2 norm before clipping; NaN without a backward pass when
        ``loss`` is not finite (the step is then skipped by the caller).
    """
    if not (bool(torch.isfinite(loss)) if finite is None else finite):
        if parallel is not None:
            # DDP expects a backward after every forward; the caller drops these gradients.
            loss.backward()
        return math.nan
    loss.backward()
    if parallel is not None:
        parallel.reduce_sparse_gradients()
    total = gradient_norm([p.grad for p in params if p.grad is not None])
    grad_norm = float(total)
    finite = math.isfinite(grad_norm)
    state.grad_norm = grad_norm
    state.clipped = finite and max_norm is not None and grad_norm > max_norm
    for callback in callbacks:
        callback.on_after_backward(state, model)
    if state.clipped and max_norm is not None:
        clip_gradients(params, max_norm, total)
        state.clipped_steps += 1
    return grad_norm


def _train_step(
    model: nn.Module,
    task: Task,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    state: LoopState,
    callbacks: Sequence[Callback],
    guard: _NonFiniteGuard,
    parallel: DataParallelStep | None = None,
) -> dict[str, float] | None:
    """One ``forward -> task -> backward -> clip -> step``; the step's scalar metrics, or
    None when a non-finite loss or gradient norm made it skip (parameters untouched)."""
    optimizer.zero_grad(set_to_none=True)
    if parallel is None:
        losses = task(model(batch), batch)
        loss = losses["loss"]
        finite = None
    else:
        loss, global_metrics = parallel.losses(batch)
        finite = math.isfinite(global_metrics["loss"])
    grad_norm = _backward(
        loss, model, params, guard.config.clip_grad_norm, state, callbacks, finite, parallel
    )
    if not math.isfinite(grad_norm):
        # Drop whatever a partial backward left so the next step starts clean.
        optimizer.zero_grad(set_to_none=True)
        state.skipped_steps += 1
        guard.skip(
            f"non-finite loss/gradient at epoch {state.epoch} step {state.step} "
            f"(loss={float(loss.detach())}, grad_norm={grad_norm})"
        )
        return None
    guard.consecutive = 0
    optimizer.step()
    if parallel is not None:
        return {**global_metrics, "grad_norm": grad_norm}
    metrics = {key: float(value.detach()) for key, value in losses.items()}
    metrics["grad_norm"] = grad_norm
    return metrics


def _run_epoch(
    model: nn.Module,
    task: Task,
    batches: BatchFactory,
    device: torch.device,
    callbacks: Sequence[Callback],
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    state: LoopState,
    guard: _NonFiniteGuard,
    parallel: DataParallelStep | None,
) -> dict[str, float]:
    """One pass over ``batches(state.epoch)``; the epoch's metrics (with ``evaluate``'s)."""
    config = guard.config
    model.train()
    totals = _EpochTotals()
    log_steps = config.log_every and is_main_process()
    for raw in batches(state.epoch):
        if parallel is not None and not parallel.feeds_every_worker(raw):
            continue
        batch = _to_device(raw, device)
        metrics = _train_step(
            model, task, batch, optimizer, params, state, callbacks, guard, parallel
        )
        if metrics is None:
            continue
        size = _batch_size(batch)
        state.step += 1
        state.samples += size
        totals.add(metrics, size)
        if log_steps and state.step % config.log_every == 0:
            logger.info("epoch %d step %d: %s", state.epoch, state.step, metrics)
        for callback in callbacks:
            callback.on_step_end(state, metrics)
        if state.stop:
            break
    settle(optimizer)  # lazily stepped tables up to date before anything reads the weights
    epoch_metrics = totals.means(state.epoch)
    if evaluate is not None:
        model.eval()
        with torch.no_grad():
            epoch_metrics.update({k: float(v) for k, v in evaluate(model, state.epoch).items()})
    return epoch_metrics


def _run_epochs(
    model: nn.Module,
    task: Task,
    batches: BatchFactory,
    config: TrainLoopConfig,
    device: torch.device,
    callbacks: Sequence[Callback],
    evaluate: Callable[[nn.Module, int], Mapping[str, float]] | None,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    state: LoopState,
    result: TrainResult,
    parallel: DataParallelStep | None = None,
) -> None:
    """The epochs of :func:`train` (split out so that ``on_train_end`` runs on failure too)."""
    guard = _NonFiniteGuard(config)
    for epoch in range(config.epochs):
        state.epoch = epoch
        epoch_metrics = _run_epoch(
            model,
            task,
            batches,
            device,
            callbacks,
            evaluate,
            optimizer,
            params,
            state,
            guard,
            parallel,
        )
        result.epochs.append(epoch_metrics)
        logger.debug("epoch %d: %s", epoch, epoch_metrics)
        for callback in callbacks:
            callback.on_epoch_end(state, epoch_metrics)
        if state.stop:
            break
