"""Listwise training of the neural rankers: a softmax over each query's candidates, and
mini-batches made of whole queries.

**Loss** (ListNet with a top-one target, Cao et al. 2007). For one task and one query ``q``
with logits ``s_i`` and labels ``y_i``::

    L_q = -sum_i (y_i / sum_j y_j) * log softmax_q(s)_i

the cross-entropy between the query's label distribution and the softmax of its logits. A
query without a positive has no label distribution: it contributes nothing (zero loss, zero
gradient), and the batch loss is the mean of ``L_q`` over the queries that have one. Softmax
is shift-invariant within a query, so the logits are ranking scores: their order within a
query is learned, their level is not, and ``sigmoid(logit)`` is not a probability.

Per-query max, log-sum-exp and sums are segment reductions (``scatter_reduce`` /
``index_add`` over compact query indices from ``torch.unique``): one pass over the batch
whatever its number of queries.

**Batches.** The softmax runs over the candidates of a query *present in the batch*, so a
query split across batches would be two shorter lists with different targets.
:func:`query_batches` shuffles queries (not rows) and cuts the shuffled sequence into batches
of about ``batch_size`` rows without splitting a query.

Example:
    >>> logits = torch.tensor([2.0, 0.0, 1.0, 1.0])
    >>> labels = torch.tensor([1.0, 0.0, 0.0, 0.0])  # query 9 has no positive
    >>> query = torch.tensor([4, 4, 9, 9])
    >>> round(float(listwise_softmax_loss(logits, labels, query)), 4)  # -log softmax(2, 0)[0]
    0.1269
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor

__all__ = ["QUERY_KEY", "listwise_softmax_loss", "query_batches"]

QUERY_KEY = "query"
"""Batch key of the ``[B]`` int64 query id of each row (listwise training only)."""


def _segment_sum(values: Tensor, index: Tensor, n: int) -> Tensor:
    return torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, index, values)


def listwise_softmax_loss(logits: Tensor, labels: Tensor, query: Tensor) -> Tensor:
    """Mean over queries with a positive of the softmax cross-entropy (module docstring).

    Args:
        logits: ``[B]`` scores of one task.
        labels: ``[B]`` non-negative relevance (0/1 here) of the same task.
        query: ``[B]`` integer query id of each row (any values, any order).

    Returns:
        A scalar; 0 (still attached to ``logits``, with zero gradient) when no query of the
        batch has a positive.

    Raises:
        ValueError: the three tensors differ in shape or are not 1-D.
    """
    if logits.ndim != 1 or labels.shape != logits.shape or query.shape != logits.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and query "
            f"{tuple(query.shape)} must be the same 1-D shape"
        )
    _, index = torch.unique(query, return_inverse=True)
    n = int(index.max()) + 1 if index.numel() else 0
    y = labels.to(logits.dtype)
    # Subtracting the per-query max keeps exp() finite; it is a constant of the softmax, so it
    # is detached (the gradient of log-softmax does not depend on it).
    peak = torch.full((n,), -torch.inf, dtype=logits.dtype, device=logits.device)
    peak = peak.scatter_reduce(0, index, logits.detach(), reduce="amax", include_self=True)
    shifted = logits - peak[index]
    log_norm = _segment_sum(shifted.exp(), index, n).log()
    log_softmax = shifted - log_norm[index]
    total = _segment_sum(y, index, n)
    # A query without a positive gets target 0 on every row: zero loss and zero gradient.
    target = y / total.clamp_min(torch.finfo(y.dtype).tiny)[index]
    per_query = _segment_sum(-target * log_softmax, index, n)
    n_scored = (total > 0).sum().clamp_min(1)
    return per_query.sum() / n_scored


def query_batches(
    query: ArrayLike, batch_size: int, rng: np.random.Generator | None = None
) -> list[NDArray[np.int64]]:
    """Row indices of mini-batches made of whole queries.

    Queries are taken in a random order (``rng``) or by ascending id (``rng=None``, e.g. for
    evaluation); a query joins the batch in which its first row would fall if the rows were
    cut every ``batch_size``, so a batch holds about ``batch_size`` rows (at most
    ``batch_size`` plus one query's rows less one) and never part of a query.

    Args:
        query: ``[N]`` integer query id per row, in any order.
        batch_size: target rows per batch, ``>= 1``.
        rng: shuffles the queries; None keeps them sorted by id.

    Returns:
        Batches of row indices into ``query``; every row appears exactly once, a query's rows
        in their original order.

    Example:
        >>> [b.tolist() for b in query_batches(np.array([5, 1, 5, 1, 1, 8]), 3)]
        [[1, 3, 4], [0, 2, 5]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = np.asarray(query)
    order = np.argsort(ids, kind="stable")  # rows grouped by query, original order within
    _, starts, sizes = np.unique(ids[order], return_index=True, return_counts=True)
    perm = rng.permutation(starts.size) if rng is not None else np.arange(starts.size)
    sizes = sizes[perm]
    offsets = np.cumsum(sizes) - sizes  # first position of each query in the batch order
    # Position p of the new order is row (p - offset of its query) of that query's run.
    positions = np.arange(ids.size) - np.repeat(offsets - starts[perm], sizes)
    rows = order[positions].astype(np.int64, copy=False)
    batch_of_query = offsets // batch_size
    first = np.flatnonzero(np.diff(batch_of_query)) + 1  # queries that open a new batch
    return [b for b in np.split(rows, offsets[first]) if b.size]
