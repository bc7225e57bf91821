"""Weight initialisation chosen by the activation that follows a layer.

He (Kaiming) initialisation keeps the activation variance constant through ReLU-family layers,
whose outputs are zero for half the inputs; Xavier (Glorot) does the same for symmetric
activations (tanh, sigmoid near 0, identity). Biases start at zero. Mixing them up is a classic
cause of vanishing (Xavier under deep ReLU stacks) or exploding (He under tanh) activations.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from funnelrec.train.config import Activation

__all__ = ["ACTIVATIONS", "RELU_FAMILY", "init_linear", "make_activation"]

RELU_FAMILY = frozenset({"relu", "leaky_relu", "prelu", "gelu", "silu"})

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
}


def make_activation(name: Activation) -> nn.Module:
    """A fresh activation module by name.

    Example:
        >>> make_activation("relu")
        ReLU()
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def init_linear(layer: nn.Linear, activation: Activation, *, bias: float = 0.0) -> None:
    """Initialise ``layer`` for the activation applied to its output.

    Args:
        layer: the linear layer, modified in place.
        activation: what follows it (``"linear"`` for an output/logit layer).
        bias: constant bias (0 is the sane default; a negative bias before a ReLU is how dead
            units are made, which the diagnostics tests do on purpose).

    Example:
        >>> import torch
        >>> layer = nn.Linear(256, 256)
        >>> init_linear(layer, "relu")
        >>> 0.05 < float(layer.weight.std()) < 0.12  # He: sqrt(2 / 256) = 0.088
        True
    """
    if activation in RELU_FAMILY:
        slope = 0.01 if activation == "leaky_relu" else 0.0
        nonlinearity: Literal["leaky_relu", "relu"] = (
            "leaky_relu" if activation == "leaky_relu" else "relu"
        )
        nn.init.kaiming_normal_(layer.weight, a=slope, nonlinearity=nonlinearity)
    else:
        gain = nn.init.calculate_gain("tanh") if activation == "tanh" else 1.0
        nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.constant_(layer.bias, bias)
