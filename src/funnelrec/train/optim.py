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

**Sparse embeddings** (``nn.Embedding(sparse=True)``) get
:class:`~funnelrec.train.catchup_adam.CatchUpAdam`, which reads and updates only the rows of
the step's lookups: a step then costs O(batch) in the embedding tables instead of O(rows), the
cost that dominates a large catalogue's two-tower step with dense Adam. Unlike SparseAdam (the
lazy variant, whose rows move only on the steps that touch them), it applies the momentum
steps a row missed before the row is read again, so it follows dense Adam. It has no weight
decay, so those tables are not decayed. :func:`settle` brings every row up to date (the loop
calls it at the end of each epoch) and :func:`release` removes its lookup hooks. A model
without sparse embeddings gets exactly the one dense optimizer it always had.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    >>> [(g["name"], len(g["params"]), g["weight_decay"]) for g in parameter_groups(model, 0.1)]
    [('decay', 1, 0.1), ('no_decay', 3, 0.0)]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from funnelrec.train.catchup_adam import CatchUpAdam
from funnelrec.train.config import TrainLoopConfig

__all__ = [
    "NORM_MODULES",
    "OptimizerSet",
    "clip_gradients",
    "gradient_norm",
    "make_optimizer",
    "parameter_groups",
    "release",
    "settle",
    "share_lookups",
    "sparse_embedding_modules",
    "sparse_embedding_parameters",
    "trainable_parameters",
]

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


def sparse_embedding_modules(model: nn.Module) -> list[nn.Embedding]:
    """The ``nn.Embedding(sparse=True)`` modules with a trainable table (sparse gradients)."""
    return [
        module
        for module in model.modules()
        if isinstance(module, nn.Embedding) and module.sparse and module.weight.requires_grad
    ]


def sparse_embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable tables of ``nn.Embedding(sparse=True)`` modules (sparse gradients)."""
    return [
        param
        for module in sparse_embedding_modules(model)
        for param in module.parameters(recurse=False)
    ]


class OptimizerSet(torch.optim.Optimizer):
    """Several optimizers stepped as one: dense Adam/AdamW and CatchUpAdam for the sparse
    embedding tables. Its ``param_groups`` are the members' (the same dicts).
    """

    def __init__(self, members: list[torch.optim.Optimizer]) -> None:
        # Not Optimizer.__init__: the members own the parameters and the state.
        self.members = members
        self.defaults: dict[str, Any] = {}
        self.state: Any = {}
        # The members' own group dicts: a change of lr here reaches them.
        self.param_groups = [group for member in members for group in member.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for member in self.members:
            member.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        del closure  # the loop never passes one
        for member in self.members:
            member.step()

    def state_dict(self) -> dict[str, Any]:
        return {"members": [member.state_dict() for member in self.members]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for member, state in zip(self.members, state_dict["members"], strict=True):
            member.load_state_dict(state)


def make_optimizer(
    model: nn.Module, config: TrainLoopConfig, task: object = None
) -> torch.optim.Optimizer:
    """The configured optimizer over the trainable parameters of the model (and task), with
    ``config.weight_decay`` on weight matrices and embeddings only (:func:`parameter_groups`);
    sparse embedding tables, if any, are stepped by CatchUpAdam (see the module docstring).

    Raises:
        ValueError: nothing to optimise (no trainable parameter).
    """
    sparse = sparse_embedding_parameters(model)
    sparse_ids = {id(p) for p in sparse}
    groups = parameter_groups(model, config.weight_decay, task)
    for group in groups:
        group["params"] = [p for p in group["params"] if id(p) not in sparse_ids]
    groups = [g for g in groups if g["params"]]
    if not groups and not sparse:
        raise ValueError("optimizer got an empty parameter list (no trainable parameter)")
    members: list[torch.optim.Optimizer] = []
    if groups:
        dense_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
        members.append(dense_cls(groups, lr=config.lr))
    if not sparse:
        return members[0]
    if config.weight_decay > 0:
        logger.info("weight decay skips the %d sparse embedding tables", len(sparse))
    tables = CatchUpAdam(sparse, lr=config.lr)
    for module in sparse_embedding_modules(model):
        tables.track(module)
    members.append(tables)
    return OptimizerSet(members)


def _catch_up_members(optimizer: torch.optim.Optimizer) -> list[CatchUpAdam]:
    """The optimizer's CatchUpAdam members (itself, or inside an :class:`OptimizerSet`)."""
    members = getattr(optimizer, "members", [optimizer])
    return [member for member in members if isinstance(member, CatchUpAdam)]


def settle(optimizer: torch.optim.Optimizer) -> None:
    """Bring the sparse tables' rows up to date (:meth:`CatchUpAdam.settle`) before the weights
    are read; nothing for other optimizers."""
    for member in _catch_up_members(optimizer):
        member.settle()


def share_lookups(optimizer: torch.optim.Optimizer, gather: Callable[[Tensor], Tensor]) -> None:
    """Make the sparse tables catch up every worker's looked-up rows (``gather``: an
    all-gather of row indices), so DDP replicas stay equal."""
    for member in _catch_up_members(optimizer):
        member.gather_rows = gather


def release(optimizer: torch.optim.Optimizer) -> None:
    """Remove the sparse tables' lookup hooks (training is over; the rows were settled at the
    end of the last epoch)."""
    for member in _catch_up_members(optimizer):
        member.release()


def gradient_norm(grads: list[Tensor]) -> Tensor:
    """Global L2 norm of gradients, sparse ones (summed over duplicate rows) included."""
    if not any(g.is_sparse for g in grads):
        return nn.utils.get_total_norm(grads)
    squares = [g.coalesce().values().float().pow(2).sum() for g in grads if g.is_sparse]
    dense = [g for g in grads if not g.is_sparse]
    if dense:
        squares.append(nn.utils.get_total_norm(dense).float().pow(2))
    return torch.stack([s.to(squares[0].device) for s in squares]).sum().sqrt()


def clip_gradients(params: list[nn.Parameter], max_norm: float, total: Tensor) -> None:
    """Rescale the gradients to the global norm ``max_norm`` given their norm ``total``
    (:func:`torch.nn.utils.clip_grads_with_norm_`, extended to sparse gradients)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not any(g.is_sparse for g in grads):
        nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return
    coefficient = min(max_norm / (float(total) + 1e-6), 1.0)
    if math.isfinite(coefficient):
        for grad in grads:
            grad.mul_(coefficient)
