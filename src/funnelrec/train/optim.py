"""The optimizer of the training loop, with weight decay only where it regularises.

Weight decay shrinks weight matrices and embedding tables towards 0, which limits their norm.
On the other parameters it only does harm: a bias or a normalisation shift/scale has no norm
to limit (decaying a BatchNorm scale towards 0 switches units off), and the learnt
log-variances of uncertainty weighting (:class:`funnelrec.rank.task.MultiTaskLoss`) would be
pulled towards equal task weights. So :func:`parameter_groups` puts

* into the **decayed** group: model parameters with ``ndim >= 2`` (``nn.Linear`` weights,
  embedding tables, batched expert weights ``[N, in, out]``), and
* into the **not decayed** group: biases (any parameter named ``*bias``, including the
  ``[N, out]`` biases of batched experts), the parameters of normalisation layers, every
  other parameter with ``ndim < 2`` (PReLU slopes, scalars), and every parameter of the
  task (the loss module), whatever its shape.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    >>> [(g["name"], len(g["params"]), g["weight_decay"]) for g in parameter_groups(model, 0.1)]
    [('decay', 1, 0.1), ('no_decay', 3, 0.0)]
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from funnelrec.train.config import TrainLoopConfig

__all__ = ["NORM_MODULES", "make_optimizer", "parameter_groups", "trainable_parameters"]

logger = logging.getLogger(__name__)

#: Normalisation layers: their scale and shift are never decayed, whatever their shape.
NORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)


def trainable_parameters(model: nn.Module, task: object = None) -> list[nn.Parameter]:
    """The model's trainable parameters, plus the task's when the task is an ``nn.Module``
    (e.g. learned uncertainty weights of a multi-task loss)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(task, nn.Module):
        params += [p for p in task.parameters() if p.requires_grad]
    return params


def _decays(module: nn.Module, name: str, param: nn.Parameter) -> bool:
    """Whether ``module``'s own parameter ``name`` is a weight matrix / embedding table."""
    return param.ndim >= 2 and not name.endswith("bias") and not isinstance(module, NORM_MODULES)


def parameter_groups(
    model: nn.Module, weight_decay: float, task: object = None
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: ``decay`` (``weight_decay``) and ``no_decay`` (0).

    Args:
        model: the network; see the module docstring for which parameters decay.
        weight_decay: the decay of the ``decay`` group.
        task: the loss; its parameters (if it is an ``nn.Module``) never decay.

    Returns:
        The non-empty groups among ``[{"name": "decay", "params": [...], "weight_decay":
        weight_decay}, {"name": "no_decay", "params": [...], "weight_decay": 0.0}]``, each
        trainable parameter exactly once (shared parameters count once, decayed if any owner
        decays them).
    """
    decay: dict[int, nn.Parameter] = {}
    keep: dict[int, nn.Parameter] = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                (decay if _decays(module, name, param) else keep)[id(param)] = param
    if isinstance(task, nn.Module):
        for param in task.parameters():
            if param.requires_grad and id(param) not in decay:
                keep[id(param)] = param
    no_decay = [p for key, p in keep.items() if key not in decay]
    groups = [
        {"name": "decay", "params": list(decay.values()), "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    logger.debug(
        "weight decay %g on %d parameter tensors, none on %d",
        weight_decay,
        len(decay),
        len(no_decay),
    )
    return [g for g in groups if g["params"]]


def make_optimizer(
    model: nn.Module, config: TrainLoopConfig, task: object = None
) -> torch.optim.Optimizer:
    """The configured optimizer over the trainable parameters of the model (and task), with
    ``config.weight_decay`` on weight matrices and embeddings only (:func:`parameter_groups`).

    Raises:
        ValueError: nothing to optimise (no trainable parameter).
    """
    groups = parameter_groups(model, config.weight_decay, task)
    if not groups:
        raise ValueError("optimizer got an empty parameter list (no trainable parameter)")
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.AdamW(groups, lr=config.lr)
