"""The loop's callback protocol: its progress state and the stock callbacks.

:class:`LoopState` is what a callback reads (and ``stop`` what it sets); :class:`Callback`
names the hook points; :class:`EarlyStopping` and :class:`KeepBest` are the stock ones. They
live apart from :mod:`funnelrec.train.loop` (which re-exports them) to keep the loop short.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from funnelrec.train.config import TrainLoopConfig

__all__ = ["Callback", "EarlyStopping", "KeepBest", "LoopState"]

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Mutable progress the callbacks can read; set ``stop = True`` to end training.

    Attributes:
        epoch: the current epoch (0-based).
        step: optimizer steps taken so far (skipped steps excluded).
        samples: samples seen by the steps taken.
        skipped_steps: steps skipped because the loss or the gradient norm was NaN/inf.
        stop: set by a callback to end training after the current step/epoch.
        grad_norm: global L2 gradient norm of the latest backward pass, before clipping
            (NaN until the first backward, possibly inf/NaN on a step about to be skipped).
        clipped: whether clipping changed the gradients of the latest backward pass (its
            pre-clip ``grad_norm`` exceeded ``config.clip_grad_norm``).
        clipped_steps: backward passes whose gradients were clipped so far.
        config: the loop configuration being run (read-only by convention).
        error: message of the :class:`NonFiniteLossError` that ended training, if any.
    """

    epoch: int = 0
    step: int = 0
    samples: int = 0
    skipped_steps: int = 0
    stop: bool = False
    grad_norm: float = math.nan
    clipped: bool = False
    clipped_steps: int = 0
    config: TrainLoopConfig | None = None
    error: str | None = None


class Callback:
    """Hook points of the loop. Subclass and override what you need (defaults do nothing).

    Order within a run::

        on_train_begin
        per epoch: per batch: forward, backward, on_after_backward, clip, step, on_step_end
                   on_epoch_end
        on_train_end   (also when training ends with NonFiniteLossError)
    """

    def on_train_begin(self, state: LoopState, model: nn.Module) -> None:
        """Before the first epoch, with the model already on its device (e.g. add hooks)."""

    def on_after_backward(self, state: LoopState, model: nn.Module) -> None:
        """After ``backward``, before clipping and the optimizer step.

        The parameters' ``.grad`` hold the raw gradients; ``state.grad_norm`` is their global
        pre-clip norm and ``state.clipped`` says whether clipping is about to rescale them.
        Called only when the loss was finite; the step may still be skipped if
        ``state.grad_norm`` is not. Anything computed here costs time on every step, so
        compute per-layer statistics only on the steps you need them.
        """

    def on_step_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        """After each optimizer step with the step's scalar metrics (``loss``, ``grad_norm``...)."""

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        """After each epoch with the epoch means (and the ``evaluate`` metrics, if any)."""

    def on_train_end(self, state: LoopState, model: nn.Module) -> None:
        """After the last epoch, or when :class:`NonFiniteLossError` ends training (then
        ``state.error`` holds its message); e.g. remove hooks, flush files."""


class EarlyStopping(Callback):
    """Stop when an epoch metric has not improved for ``patience`` epochs.

    Args:
        monitor: key of the epoch metrics to watch (e.g. ``"loss"`` or a validation metric).
        mode: ``"min"`` or ``"max"``.
        patience: epochs without an improvement of more than ``min_delta`` before stopping.
        min_delta: the smallest change that counts as an improvement.
    """

    def __init__(
        self,
        monitor: str = "loss",
        mode: Literal["min", "max"] = "min",
        patience: int = 2,
        min_delta: float = 0.0,
    ) -> None:
        self.monitor = monitor
        self.sign = 1.0 if mode == "min" else -1.0
        self.patience = patience
        self.min_delta = min_delta
        self.best = math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            raise KeyError(f"EarlyStopping monitors '{self.monitor}', epoch has {sorted(metrics)}")
        value = self.sign * metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            logger.info("early stopping at epoch %d (%s)", state.epoch, self.monitor)
            state.stop = True


class KeepBest(Callback):
    """Remembers the weights of the epoch with the best ``monitor`` value (a strict
    improvement counts); :meth:`restore` loads them back after training.

    Args:
        model: the module whose ``state_dict`` is kept.
        monitor: key of the epoch metrics (usually an ``evaluate`` metric).
        mode: ``"min"`` or ``"max"``.
    """

    def __init__(self, model: nn.Module, monitor: str, mode: Literal["min", "max"]) -> None:
        self.model = model
        self.monitor = monitor
        self.sign = 1.0 if mode == "min" else -1.0
        self.best = self.sign * math.inf  # the best value seen, in the metric's own sign
        self.best_epoch = -1
        self.state: dict[str, Tensor] | None = None

    def on_epoch_end(self, state: LoopState, metrics: dict[str, float]) -> None:
        value = metrics[self.monitor]
        if self.sign * value < self.sign * self.best:
            self.best, self.best_epoch = value, state.epoch
            self.state = copy.deepcopy(self.model.state_dict())

    def restore(self) -> None:
        """Load the best epoch's weights (nothing when no epoch was evaluated)."""
        if self.state is not None:
            self.model.load_state_dict(self.state)
