"""Adam for embedding tables with sparse gradients that follows dense Adam's trajectory, at
O(rows in the batch) per step.

Dense Adam moves every row of a table on every step: a row that is not in the batch gets a
zero gradient, but its first moment keeps it moving (``m`` decays by ``beta1`` a step), so a
tail item's one gradient is applied over the next ~10-30 steps. SparseAdam (the "lazy"
variant) moves a row only on the steps that contain it and so drops that momentum; measured on
the two-tower with a 66k-item catalogue it lost a third of Recall@50 (docs/distributed.md).

This optimizer applies the steps a row missed just before the row is next read: a forward
pre-hook on each tracked ``nn.Embedding`` (:meth:`CatchUpAdam.track`) catches up the rows a
lookup is about to read, so the forward pass, and with it the gradient, sees the values dense
Adam would hold; :meth:`CatchUpAdam.settle` catches up every row (the training loop calls it at
the end of each epoch, before anything else reads the weights).

With no gradient, a row's moments after ``i`` skipped steps are ``beta1**i * m`` and
``beta2**i * v``, so the missed updates are

    sum_i lr * w_i * m / (a_i * sqrt(v) + eps),
    w_i = beta1**i / (1 - beta1**j),  a_i = sqrt(beta2)**i / sqrt(1 - beta2**j),  j = s + i,

(``s`` the row's last step). Without ``eps`` that is ``lr * m / sqrt(v) * H`` with the scalar
``H = sum_i w_i / a_i`` per row, exact. With ``eps`` it is taken as ``lr * m * H / (sqrt(v) +
eps * H / W)``, ``W = sum_i w_i``: exact for one missed step, and otherwise only ``eps``'s
share of the denominator is approximated (it matters only for gradients below ~1e-6). The sums
stop where ``(beta1 / sqrt(beta2))**i`` falls below :data:`HORIZON_TOLERANCE`.

Only tables with sparse gradients (``nn.Embedding(sparse=True)``) and no weight decay: L2 decay
would move every row on every step, which has no closed form here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

HORIZON_TOLERANCE = 1e-12
"""The missed steps a catch-up sums stop where ``(beta1 / sqrt(beta2)) ** i`` falls below this."""
SETTLE_ROWS = 4096
"""Rows caught up together by :meth:`CatchUpAdam.settle` (bounds its ``[rows, horizon]``
float64 temporaries to ~10 MB)."""


class CatchUpAdam(torch.optim.Optimizer):
    """Adam over sparse-gradient embedding tables, with the missed steps caught up (see the
    module docstring). Same defaults as ``torch.optim.Adam``.

    Example:
        >>> table = torch.nn.Embedding(5, 2, sparse=True)
        >>> opt = CatchUpAdam(table.parameters(), lr=0.1)
        >>> opt.track(table)
        >>> table(torch.tensor([1])).sum().backward()
        >>> opt.step()
        >>> opt.settle()
        >>> opt.release()
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self._hooks: list[RemovableHandle] = []
        # Under DDP each worker looks up its own shard's rows, but the replicas must catch up
        # the same rows at the same step to stay equal: the loop sets this to an all-gather
        # (train/distributed.gather_rows), and every worker catches up the union.
        self.gather_rows: Callable[[Tensor], Tensor] | None = None

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        del closure  # the training loop never passes one
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:  # not in this step's graph: dense Adam skips it too
                    continue
                if not param.grad.is_sparse:
                    raise ValueError("CatchUpAdam steps tables with sparse gradients only")
                grad = param.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self._state_of(param)
                state["step"] += 1
                t = state["step"]
                self._catch_up(param, state, rows, t - 1, group)
                m = state["exp_avg"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
                v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
                denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(group["eps"])
                param.index_add_(0, rows, m.div(denom).mul_(-group["lr"] / (1 - beta1**t)))
                state["exp_avg"].index_copy_(0, rows, m)
                state["exp_avg_sq"].index_copy_(0, rows, v)
                state["last"][rows] = t

    def track(self, module: nn.Embedding) -> None:
        """Catch up the rows each lookup of ``module`` (whose weight this optimizer steps)
        reads, before it reads them (while gradients are on: during training)."""

        weight = module.weight
        group = next(g for g in self.param_groups if any(p is weight for p in g["params"]))

        def catch_up_lookup(_: nn.Module, args: tuple[Any, ...]) -> None:
            if torch.is_grad_enabled():
                self._catch_up_lookup(weight, args[0], group)

        self._hooks.append(module.register_forward_pre_hook(catch_up_lookup))

    def release(self) -> None:
        """Remove the hooks of :meth:`track` (after training)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    @torch.no_grad()
    def _catch_up_lookup(self, param: Tensor, index: Tensor, group: dict) -> None:
        """Apply the missed steps of the rows ``index`` (any shape) of ``param``."""
        state = self.state.get(param)
        if not state:
            return
        rows = torch.unique(index)
        if self.gather_rows is not None:
            rows = torch.unique(self.gather_rows(rows))
        self._catch_up(param, state, rows, state["step"], group)

    @torch.no_grad()
    def settle(self) -> None:
        """Apply every row's missed steps up to the last step, so the tables hold what dense
        Adam would hold now (call before reading the weights)."""
        for group in self.param_groups:
            for param in group["params"]:
                state = self.state.get(param)
                if not state:
                    continue
                # Rows never read (last step 0) have no momentum to apply: left as they are.
                last = state["last"]
                behind = torch.nonzero((last > 0) & (last < state["step"])).squeeze(1)
                for chunk in behind.split(SETTLE_ROWS):
                    self._catch_up(param, state, chunk, state["step"], group)

    def _state_of(self, param: Tensor) -> dict[str, Any]:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
            state["last"] = torch.zeros(param.shape[0], dtype=torch.long, device=param.device)
        return state

    def _catch_up(
        self, param: Tensor, state: dict[str, Any], rows: Tensor, upto: int, group: dict
    ) -> None:
        """Apply the steps ``last + 1 .. upto`` of ``rows`` (no gradient on any of them)."""
        missed = upto - state["last"][rows]
        behind = missed > 0
        if not bool(behind.any()):
            return
        rows, missed = rows[behind], missed[behind]
        # The sums depend only on how many steps a row missed: computed once per distinct
        # count (at most the steps since the epoch began) instead of once per row (tens of
        # thousands a lookup, each a [horizon] float64 series of powers).
        missed_u, inverse = torch.unique(missed, return_inverse=True)
        total_w, total_h = _missed_sums(missed_u, upto, group["betas"], param.device)
        m, v = state["exp_avg"][rows], state["exp_avg_sq"][rows]
        h = total_h.to(param.dtype)[inverse, None]
        floor = (group["eps"] * total_h / total_w).to(param.dtype)[inverse, None]
        param.index_add_(0, rows, (m * h).div_(v.sqrt().add_(floor)).mul_(-group["lr"]))
        beta1, beta2 = group["betas"]
        decay = missed_u.to(param.dtype)
        decay1 = torch.pow(beta1, decay)[inverse, None]
        decay2 = torch.pow(beta2, decay)[inverse, None]
        state["exp_avg"].index_copy_(0, rows, m.mul_(decay1))
        state["exp_avg_sq"].index_copy_(0, rows, v.mul_(decay2))
        state["last"][rows] = upto


def _missed_sums(
    missed: Tensor, upto: int, betas: tuple[float, float], device: torch.device
) -> tuple[Tensor, Tensor]:
    """``(W, H)`` of the module docstring, float64, for rows that missed ``missed`` steps up
    to step ``upto``."""
    beta1, beta2 = betas
    horizon = _horizon(beta1, beta2)
    steps = torch.arange(1, min(horizon, int(missed.max())) + 1, device=device)
    since = steps.to(torch.float64)
    step_j = (upto - missed).to(torch.float64)[:, None] + since[None, :]  # [U, K]
    inside = steps[None, :] <= missed[:, None]
    w = beta1**since / (1 - beta1**step_j)
    a = math.sqrt(beta2) ** since / torch.sqrt(1 - beta2**step_j)
    return torch.where(inside, w, 0.0).sum(1), torch.where(inside, w / a, 0.0).sum(1)


def _horizon(beta1: float, beta2: float) -> int:
    """Missed steps after which a catch-up's terms fall below :data:`HORIZON_TOLERANCE`."""
    ratio = beta1 / math.sqrt(beta2)
    if ratio <= 0.0:
        return 1
    if ratio >= 1.0:  # momentum that never fades (beta1 >= sqrt(beta2)): sum a long window
        return 100_000
    return max(1, math.ceil(math.log(HORIZON_TOLERANCE) / math.log(ratio)))
