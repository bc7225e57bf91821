"""The training package's configuration, importable without torch.

Reading or validating a config (the CLI, a serving worker, another stage's config that embeds
these) must stay cheap, so this module holds the specs only; the modules that own parameters
(:mod:`funnelrec.train.loop`, :mod:`funnelrec.train.init`) import them from here.

Example:
    >>> TrainLoopConfig(epochs=3).optimizer
    'adam'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Activation", "TrainLoopConfig"]

Activation = Literal["relu", "leaky_relu", "prelu", "gelu", "silu", "tanh", "sigmoid", "linear"]
"""Activation names :func:`funnelrec.train.init.make_activation` builds (``linear`` = none)."""


class TrainLoopConfig(BaseModel):
    """How the loop optimises: optimizer, schedule length, clipping and the NaN/inf policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["loop"] = "loop"
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(
        0.0,
        ge=0,
        description="L2 (adam) / decoupled (adamw) decay of weight matrices and embeddings "
        "(never biases, norm layers or loss parameters).",
    )
    epochs: int = Field(1, gt=0, description="Maximum number of passes over the batches.")
    clip_grad_norm: float | None = Field(
        5.0, gt=0, description="Clip the global gradient L2 norm to this (None = no clipping)."
    )
    nonfinite: Literal["skip", "raise"] = Field(
        "skip", description="On a NaN/inf loss or gradient: skip the step, or raise."
    )
    max_consecutive_skips: int = Field(
        20, gt=0, description="Raise after this many non-finite steps in a row."
    )
    log_every: int = Field(0, ge=0, description="Log the step metrics every n steps (0 = off).")
