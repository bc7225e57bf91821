"""The layers :class:`~funnelrec.train.health.HealthMonitor` watches, and their statistics.

A *layer* is every module that owns trainable parameters directly: ``nn.Linear``,
``nn.Embedding``, normalisation layers, and blocks that hold their weights themselves, such as
the batched experts of :class:`~funnelrec.rank.modules.moe.ExpertBank` (``weight [N, in,
out]``, no ``nn.Linear`` inside) or an attention unit that uses its weights functionally. Its
gradient norm is the L2 norm over its own non-bias parameters (the weight, as before for
``nn.Linear``; all of them when it has only biases).

A layer whose weight is 3-D ``[N, in, out]`` is a batch of ``N`` layers; an activation right
after it has output ``[N, B, H]`` and ``N * H`` units (one per member), so a dead expert is
not hidden by the live ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from funnelrec.train.optim import NORM_MODULES

__all__ = [
    "grad_norms",
    "member_count",
    "parameterised_modules",
    "passes_through",
    "unit_max",
    "watched_parameters",
]


def watched_parameters(module: nn.Module) -> list[nn.Parameter]:
    """``module``'s own trainable parameters whose gradient is reported: the non-bias ones
    (all trainable ones when it has nothing but biases)."""
    own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
    weights = [p for n, p in own if not n.endswith("bias")]
    return weights or [p for _, p in own]


def parameterised_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every module with its own trainable parameters, by name (the root as ``<model>``), in
    registration order. Frozen layers have no gradient to watch and are left out."""
    return {
        name or "<model>": module
        for name, module in model.named_modules()
        if watched_parameters(module)
    }


def passes_through(module: nn.Module) -> bool:
    """Normalisation layers: an activation after one is fed by the layer before it."""
    return isinstance(module, NORM_MODULES)


def member_count(module: nn.Module) -> int | None:
    """``N`` of a batched layer (a 3-D ``weight [N, in, out]``), else None."""
    if isinstance(module, nn.Conv1d | nn.ConvTranspose1d):  # 3-D weights, not a batch
        return None
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and weight.ndim == 3:
        return int(weight.shape[0])
    return None


def _norm(grad: Tensor) -> Tensor:
    values = grad.coalesce().values() if grad.is_sparse else grad  # sparse embeddings
    return torch.linalg.vector_norm(values.detach()).float()


def grad_norms(layers: Mapping[str, nn.Module]) -> Tensor:
    """``[L]`` gradient L2 norm of each layer's watched parameters (one device tensor, so the
    caller syncs once); NaN where none has a gradient (layer unused this step)."""
    norms = []
    for module in layers.values():
        grads = [p.grad for p in watched_parameters(module) if p.grad is not None]
        if not grads:
            device = next(module.parameters()).device
            norms.append(torch.full((), math.nan, device=device))
        elif len(grads) == 1:
            norms.append(_norm(grads[0]))
        else:
            norms.append(torch.linalg.vector_norm(torch.stack([_norm(g) for g in grads])))
    if not norms:
        return torch.zeros(0)
    device = norms[0].device
    return torch.stack([n.to(device) for n in norms])


def unit_max(output: Tensor, members: int | None) -> Tensor:
    """Per-unit max of an activation's output over its batch (and sequence) dimensions.

    Args:
        output: ``[..., H]`` (units ``H``), or ``[N, B, H]`` after a batch of ``members = N``
            layers (units ``N * H``).
        members: ``N``, or None for an ordinary layer.

    Returns:
        ``[units]``.
    """
    out = output.detach()
    if members is not None and out.ndim == 3 and out.shape[0] == members:
        return out.amax(dim=1).reshape(-1)
    flat = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out.reshape(-1, 1)
    return flat.amax(dim=0)
