"""Fitting the pre-ranker (:mod:`funnelrec.rank.prerank`) by distillation from the ranker.

The target is the ranker's order, not the labels: the pre-ranker's only job is to keep what
the ranker would put on top, so it learns from every query the ranker scored (labels are
sparse; the ranker's order exists for every query). Per query, the ranker's top
``teacher_top`` candidates get weight ``1 / log2(1 + position)`` and the rest 0; the loss is
the listwise softmax cross-entropy against that distribution
(:func:`~funnelrec.rank.listwise.listwise_softmax_loss`), which only cares about the order
within a query, so the ranker's score scale (fusion formula, calibration) does not matter.

Training is full-batch Adam on standardised inputs (a few hundred thousand rows of a few
dozen columns fit in memory); every ``eval_every`` steps the validation loss is measured and
the best weights are kept (torch is only needed here: inference is NumPy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from funnelrec.metrics.rank import query_positions
from funnelrec.rank.config import PreRankConfig
from funnelrec.rank.listwise import listwise_softmax_loss
from funnelrec.rank.prerank import N_POPULARITY, forward, teacher_kept


@dataclass(frozen=True)
class DistillSet:
    """Inputs and the ranker's scores of one sample set.

    Attributes:
        x: ``[N, d]`` raw pre-ranker inputs (:meth:`PreRanker.inputs`).
        teacher: ``[N]`` the ranker's fused scores.
        group: ``[N]`` query ids.
    """

    x: NDArray[np.float64]
    teacher: NDArray[np.float64]
    group: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.x.shape[0])


def teacher_targets(
    teacher: NDArray[np.floating], group: NDArray[np.integer], top: int
) -> NDArray[np.float64]:
    """``[N]`` distillation weights: ``1 / log2(2 + position)`` for the ranker's ``top`` best
    of each query (position 0-based), 0 below.

    Example:
        >>> teacher_targets(np.array([0.2, 0.9, 0.5]), np.array([1, 1, 1]), 2).round(3).tolist()
        [0.0, 1.0, 0.631]
    """
    position = query_positions(np.asarray(group), teacher)
    return np.where(position < top, 1.0 / np.log2(position + 2.0), 0.0)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread, then restore its setting: the model is tiny, and a thread pool
    only adds synchronisation (one full-batch step on 12k rows: 3 ms on one thread, 65 ms on
    two on the shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _network(width: int, config: PreRankConfig, seed: int) -> torch.nn.Module:
    # Initialised inside fork_rng so that fitting a pre-ranker leaves the global torch RNG
    # (and with it every later model's initialisation) as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.model == "linear":
            return torch.nn.Sequential(torch.nn.Linear(width, 1))
        return torch.nn.Sequential(
            torch.nn.Linear(width, config.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(config.hidden, 1),
        )


def _params(
    network: torch.nn.Module, mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> dict[str, NDArray[Any]]:
    layers = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    out: dict[str, NDArray[Any]] = {"mean": mean, "scale": scale}
    for i, layer in enumerate(layers, start=1):
        out[f"w{i}"] = layer.weight.detach().double().numpy().T.copy()
        out[f"b{i}"] = layer.bias.detach().double().numpy().copy()
    return out


@dataclass(frozen=True)
class _Tensors:
    x: torch.Tensor
    target: torch.Tensor
    query: torch.Tensor

    @classmethod
    def of(
        cls,
        part: DistillSet,
        mean: NDArray[np.float64],
        scale: NDArray[np.float64],
        top: int,
    ) -> _Tensors:
        x = ((part.x - mean) / scale).astype(np.float32)
        target = teacher_targets(part.teacher, part.group, top).astype(np.float32)
        return cls(torch.from_numpy(x), torch.from_numpy(target), torch.from_numpy(part.group))

    def loss(self, network: torch.nn.Module) -> torch.Tensor:
        return listwise_softmax_loss(network(self.x)[:, 0], self.target, self.query)


def distill(
    train: DistillSet, valid: DistillSet, config: PreRankConfig, *, k: int, seed: int
) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """Fit the pre-ranker's weights on ``train``, keeping the check with the lowest validation
    loss (the last one without validation rows).

    Args:
        train / valid: inputs and the ranker's scores (module docstring).
        config: the model and its training knobs.
        k: the ranked list's cut-off the validation report is about (``guards.k``).
        seed: initialisation seed.

    Returns:
        ``(params, stats)``: the weights for :class:`~funnelrec.rank.prerank.PreRanker` and
        how the fit went (best step, losses, the share of the ranker's top ``k`` the cut keeps
        on the validation queries against what cutting the merged order keeps).
    """
    if len(train) == 0:
        raise ValueError("no samples to distil the pre-ranker from")
    start = time.perf_counter()
    mean = train.x.mean(axis=0)
    scale = train.x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)  # a constant input: centred, not blown up
    network = _network(train.x.shape[1], config, seed)
    fit = _Tensors.of(train, mean, scale, config.teacher_top)
    check = _Tensors.of(valid, mean, scale, config.teacher_top) if len(valid) else None
    with _one_thread():
        best = _train(network, fit, check, mean, scale, config)
    params: dict[str, NDArray[Any]] = best["params"]
    stats = {
        "train_samples": len(train),
        "valid_samples": len(valid),
        "inputs": int(train.x.shape[1]),
        "best_step": best["step"],
        "valid_loss": best["loss"] if check is not None else float("nan"),
        "fit_s": time.perf_counter() - start,
    }
    if len(valid):
        stats.update(_kept_report(params, valid, config.keep, k))
    return params, stats


def _train(
    network: torch.nn.Module,
    fit: _Tensors,
    check: _Tensors | None,
    mean: NDArray[np.float64],
    scale: NDArray[np.float64],
    config: PreRankConfig,
) -> dict[str, Any]:
    """Full-batch Adam; ``{loss, step, params}`` of the check with the lowest validation loss
    (the last check without validation rows)."""
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.l2)
    best: dict[str, Any] = {"loss": float("inf"), "step": 0, "params": None}
    for step in range(1, config.steps + 1):
        optimiser.zero_grad()
        loss = fit.loss(network)
        loss.backward()
        optimiser.step()
        if step % config.eval_every and step != config.steps:
            continue
        with torch.no_grad():
            value = float((check or fit).loss(network))
        if check is None or value < best["loss"]:
            best = {"loss": value, "step": step, "params": _params(network, mean, scale)}
    return best


def _kept_report(
    params: dict[str, NDArray[Any]], valid: DistillSet, keep: int, k: int
) -> dict[str, Any]:
    """The share of the ranker's top ``k`` the pre-ranker's ``keep`` holds on the validation
    queries it cuts, and what keeping the first ``keep`` merged candidates would hold (the
    cheaper alternative: ``rank.serve.score_k = keep``)."""
    student = forward(params, valid.x)
    kept, n_cut = teacher_kept(student, valid.teacher, valid.group, keep, k)
    # The inputs end with log1p(merged_rank), then the popularity columns.
    merged = -valid.x[:, -(N_POPULARITY + 1)]
    merge_kept, _ = teacher_kept(merged, valid.teacher, valid.group, keep, k)
    return {
        f"valid_top{k}_kept": kept,
        f"valid_top{k}_kept_merge_cut": merge_kept,
        "valid_queries_cut": n_cut,
    }
