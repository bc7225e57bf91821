"""Multi-layer perceptrons: ``Linear -> [BatchNorm] -> activation -> [Dropout]`` blocks.

Every ``Linear`` is initialised for the activation that follows it
(:func:`~funnelrec.train.init.init_linear`): He for the ReLU family, Xavier otherwise.
"""

from __future__ import annotations

from torch import Tensor, nn

from funnelrec.rank.modules.config import MLPConfig
from funnelrec.train.config import Activation
from funnelrec.train.init import init_linear, make_activation


def activation_layer(name: Activation) -> nn.Module:
    """:func:`~funnelrec.train.init.make_activation`, in place where the module allows it
    (ReLU, LeakyReLU): every activation here follows a ``Linear``/``BatchNorm`` whose backward
    does not need its output, so overwriting it saves a full-size allocation per layer."""
    module = make_activation(name)
    if isinstance(module, nn.ReLU | nn.LeakyReLU):
        module.inplace = True
    return module


def linear(in_dim: int, out_dim: int, activation: Activation, *, bias: bool = True) -> nn.Linear:
    """A ``nn.Linear`` initialised for the ``activation`` that follows it
    (``"linear"`` for a logit/output layer)."""
    layer = nn.Linear(in_dim, out_dim, bias=bias)
    init_linear(layer, activation)
    return layer


class MLP(nn.Module):
    """``[B, in_dim] -> [B, config.hidden[-1]]`` (identity when ``hidden`` is empty).

    Args:
        in_dim: input width.
        config: layer widths, activation, dropout, batch norm.

    Example:
        >>> import torch
        >>> MLP(8, MLPConfig(hidden=(16, 4)))(torch.zeros(3, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(self, in_dim: int, config: MLPConfig) -> None:
        super().__init__()
        self.out_dim = config.out_dim(in_dim)
        layers: list[nn.Module] = []
        width = in_dim
        for size in config.hidden:
            layers.append(linear(width, size, config.activation, bias=not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(activation_layer(config.activation))
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = size
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[B, in_dim]`` -> ``[B, out_dim]``."""
        return self.layers(x)
