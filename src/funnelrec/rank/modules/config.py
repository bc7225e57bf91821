"""Configs of the building blocks (MLPs, gates, towers): no torch import, so reading a model
config stays cheap; :mod:`funnelrec.rank.models.config` builds on them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from funnelrec.train.config import Activation


class MLPConfig(BaseModel):
    """Hidden layer widths and what goes between them.

    Example:
        >>> MLPConfig(hidden=(64, 32)).out_dim(10)
        32
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mlp"] = "mlp"
    hidden: tuple[int, ...] = Field((256, 128), description="Widths of the hidden layers.")
    activation: Activation = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after each activation.")
    batch_norm: bool = Field(False, description="BatchNorm1d between Linear and activation.")

    def out_dim(self, in_dim: int) -> int:
        """Width of the output for an input of width ``in_dim`` (``in_dim`` if no layers)."""
        return self.hidden[-1] if self.hidden else in_dim


# The gates are linear maps: softmax(W x), no hidden layer.
GATE = MLPConfig(hidden=())


def tower_config() -> MLPConfig:
    """Default per-task tower: one hidden layer of 64."""
    return MLPConfig(hidden=(64,))
