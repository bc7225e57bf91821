"""Ranking losses: binary cross-entropy (or a listwise softmax) per task, combined with static
or learned weights.

The model returns ``{task: logit [B]}``; :class:`MultiTaskLoss` reads ``label_<task>``
``[B]`` from the batch and returns ``{"loss", "loss_<task>", ...}`` scalars for the training
loop (:func:`funnelrec.train.loop.train`).

Uncertainty weighting (Kendall, Gal & Cipolla 2018) learns one log-variance ``s_t`` per task
and minimises ``sum_t w_t * (exp(-s_t) * L_t + s_t / 2)`` (the classification form
``L / sigma^2 + log sigma`` with ``s = log sigma^2``): a task whose loss stays high gets its
weight ``exp(-s_t)`` lowered, and the ``s_t / 2`` term keeps the weights from collapsing to 0.
The ``s_t`` are ``nn.Parameter`` s of the loss module, so the loop optimises them with the
model (never weight-decayed: :func:`funnelrec.train.optim.parameter_groups`). For ESMM the
post-click labels are the entire-space ones (click AND convert), which is exactly what BCE on
its ``logit(pCTR * pCVR)`` outputs needs; :func:`funnelrec.rank.labels.label_exposures` labels
every task that follows click (``TaskLabel.after``) so.

``loss="listwise"`` replaces each task's BCE by
:func:`~funnelrec.rank.listwise.listwise_softmax_loss` over the batch's queries (the batch
must carry ``query`` ids and hold whole queries: :func:`~funnelrec.rank.listwise.query_batches`);
the weighting above is unchanged. Its logits are ranking scores, not log-odds.

Per-sample weights. A batch may carry ``weight_<task>`` ``[B]`` (weighted duration tasks,
rank/duration.py): the task's BCE becomes ``sum_i w_i * BCE_i / sum_i w_i`` (YouTube's
weighted logistic regression for watch time: positives weighted by their play seconds, so
the odds estimate the expected watch time); listwise, the weights grade the relevance
(``label * weight``: a query's softmax target is proportional to watch time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from funnelrec.rank.duration import WEIGHT_PREFIX
from funnelrec.rank.listwise import QUERY_KEY, listwise_softmax_loss


class MultiTaskLossConfig(BaseModel):
    """Which tasks, their static weights and whether to learn uncertainty weights.

    Example:
        >>> MultiTaskLossConfig(tasks=("click", "buy"), weights={"buy": 2.0}).weight("click")
        1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["multi_task_bce"] = "multi_task_bce"
    tasks: tuple[str, ...] = Field(..., min_length=1, description="Tasks, in model order.")
    weights: dict[str, float] = Field(
        default_factory=dict, description="Static weight per task (missing tasks weigh 1)."
    )
    uncertainty: bool = Field(False, description="Learn a log-variance per task (Kendall).")
    init_log_var: float = Field(0.0, description="Initial log-variance s_t.")
    loss: Literal["pointwise", "listwise"] = Field(
        "pointwise",
        description="pointwise: BCE per sample; listwise: softmax cross-entropy over each "
        "query's samples (needs the batch's 'query' ids).",
    )

    @model_validator(mode="after")
    def _check(self) -> MultiTaskLossConfig:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"duplicate tasks in {self.tasks}")
        unknown = sorted(set(self.weights) - set(self.tasks))
        if unknown:
            raise ValueError(f"weights for unknown tasks {unknown}; tasks are {self.tasks}")
        negative = sorted(t for t, w in self.weights.items() if w < 0)
        if negative:
            raise ValueError(f"negative weights for {negative}")
        return self

    def weight(self, task: str) -> float:
        """The static weight of ``task`` (1.0 unless configured)."""
        return float(self.weights.get(task, 1.0))


class MultiTaskLoss(nn.Module):
    """Weighted sum of per-task BCE-with-logits (or listwise softmax cross-entropy).

    Args:
        config: tasks, static weights, uncertainty weighting.

    Example:
        >>> loss = MultiTaskLoss(MultiTaskLossConfig(tasks=("click", "buy")))
        >>> outputs = {"click": torch.zeros(4), "buy": torch.zeros(4)}
        >>> batch = {"label_click": torch.ones(4), "label_buy": torch.zeros(4)}
        >>> out = loss(outputs, batch)
        >>> round(float(out["loss"]), 4), round(float(out["loss_click"]), 4)  # 2 log 2, log 2
        (1.3863, 0.6931)
    """

    # A buffer (follows .to(device)); declared so type checkers see a Tensor, not a Module.
    weights: Tensor

    def __init__(self, config: MultiTaskLossConfig) -> None:
        super().__init__()
        self.config = config
        self.tasks = config.tasks
        weights = torch.tensor([config.weight(t) for t in config.tasks], dtype=torch.float32)
        self.register_buffer("weights", weights, persistent=False)
        self.log_var: nn.Parameter | None = None
        if config.uncertainty:
            init = torch.full((len(config.tasks),), config.init_log_var, dtype=torch.float32)
            self.log_var = nn.Parameter(init)

    def forward(
        self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """The loss and its parts.

        Args:
            outputs: ``{task: logit [B]}`` (extra keys are ignored).
            batch: ``label_<task>`` ``[B]`` in {0, 1} for every configured task, optionally
                ``weight_<task>`` ``[B]`` (per-sample loss weights); listwise also ``query``
                ``[B]`` (query id per row, whole queries only).

        Returns:
            ``loss`` (scalar to minimise), ``loss_<task>`` (mean BCE, or mean listwise loss
            over the queries with a positive, per task) and, with uncertainty weighting,
            ``log_var_<task>`` (detached).

        Raises:
            KeyError: a task's logits or labels are missing, or listwise without ``query``.
        """
        listwise = self.config.loss == "listwise"
        if listwise and QUERY_KEY not in batch:
            raise KeyError(f"listwise loss needs '{QUERY_KEY}' in the batch (got {sorted(batch)})")
        losses = []
        for task in self.tasks:
            if task not in outputs:
                raise KeyError(f"model outputs have no task '{task}' (got {sorted(outputs)})")
            key = f"label_{task}"
            if key not in batch:
                raise KeyError(f"batch has no '{key}' (got {sorted(batch)})")
            logits = outputs[task]
            labels = batch[key].to(logits.dtype)
            weight = batch.get(f"{WEIGHT_PREFIX}{task}")
            if listwise:
                relevance = labels if weight is None else labels * weight.to(logits.dtype)
                losses.append(listwise_softmax_loss(logits, relevance, batch[QUERY_KEY]))
            elif weight is None:
                losses.append(nn.functional.binary_cross_entropy_with_logits(logits, labels))
            else:
                losses.append(_weighted_bce(logits, labels, weight.to(logits.dtype)))
        per_task = torch.stack(losses)  # [T]
        weights = self.weights.to(per_task.dtype)
        if self.log_var is None:
            total = (weights * per_task).sum()
        else:
            s = self.log_var.to(per_task.dtype)
            total = (weights * (torch.exp(-s) * per_task + 0.5 * s)).sum()
        out = {"loss": total}
        for i, task in enumerate(self.tasks):
            out[f"loss_{task}"] = per_task[i].detach()
            if self.log_var is not None:
                out[f"log_var_{task}"] = self.log_var[i].detach()
        return out


def _weighted_bce(logits: Tensor, labels: Tensor, weight: Tensor) -> Tensor:
    """``sum(w * BCE) / sum(w)`` over ``[B]`` rows (0 for an all-zero weight batch)."""
    per_row = nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (weight * per_row).sum() / weight.sum().clamp_min(1e-12)


__all__ = ["MultiTaskLoss", "MultiTaskLossConfig"]
