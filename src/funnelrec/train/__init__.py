"""The one training loop (model, task and loop kept separate) and its callbacks."""

from funnelrec.train.loop import (
    Callback,
    EarlyStopping,
    LoopState,
    NonFiniteLossError,
    TrainLoopConfig,
    TrainResult,
    resolve_device,
    train,
)

__all__ = [
    "Callback",
    "EarlyStopping",
    "LoopState",
    "NonFiniteLossError",
    "TrainLoopConfig",
    "TrainResult",
    "resolve_device",
    "train",
]
