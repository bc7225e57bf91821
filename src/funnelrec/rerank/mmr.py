"""Maximal Marginal Relevance (Carbonell & Goldstein, SIGIR 1998), greedy, O(N * k).

Each step picks the item that maximises ``lam * rel_i - (1 - lam) * max_{j in Y} S_ij`` over
the items not yet selected ``Y``. Keeping the running ``max_{j in Y} S_ij`` for every item and
folding in one row of ``S`` per pick makes a step O(N) instead of O(N * |Y|).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from funnelrec.rerank.similarity import normalize_relevance, validate_selection_inputs


def relevance_order(relevance: NDArray[np.floating], k: int) -> NDArray[np.int64]:
    """The first ``k`` positions by relevance descending, ties by lower position first.

    Args:
        relevance: ``[N]`` scores.
        k: how many positions (clipped to ``N``).

    Returns:
        ``[min(k, N)]`` int64 positions.

    Example:
        >>> relevance_order(np.array([0.1, 0.5, 0.5, 0.2]), 3).tolist()
        [1, 2, 3]
    """
    # Negation is exact, so a stable ascending sort of -r is a stable descending sort of r.
    order = np.argsort(-np.asarray(relevance, dtype=np.float64), kind="stable")
    return order[:k].astype(np.int64, copy=False)


def mmr_select(
    relevance: NDArray[np.floating],
    similarity: NDArray[np.floating],
    k: int,
    lam: float,
) -> NDArray[np.int64]:
    """Greedy MMR: ``k`` positions in selection order.

    Relevance is min-max normalised to ``[0, 1]`` first so that ``lam`` means the same trade-off
    whatever the score scale (similarities live in ``[-1, 1]``). The first pick is the most
    relevant item (the penalty of an empty selection is 0). ``lam = 1`` is exactly the stable
    sort by relevance descending; ``lam = 0`` ignores relevance after the first pick. Ties go to
    the lower position.

    Args:
        relevance: ``[N]`` finite scores, higher is better.
        similarity: ``[N, N]`` item-item similarity (symmetric), e.g. from
            :func:`~funnelrec.rerank.similarity.item_kernel`.
        k: how many to select, ``>= 0``; ``k > N`` returns all ``N``.
        lam: relevance weight in ``[0, 1]``.

    Returns:
        ``[min(k, N)]`` int64 positions into ``relevance``, in selection order.

    Example:
        >>> sim = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> mmr_select(np.array([1.0, 0.9, 0.5]), sim, k=3, lam=0.5).tolist()
        [0, 2, 1]
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    rel, sim, n = validate_selection_inputs(relevance, similarity, k)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if lam == 1.0:
        # Pure relevance: sort the raw scores, so min-max rounding can create no false ties.
        return relevance_order(rel, n)
    # float32 throughout: the rows of S are float32 and mixed-precision ufuncs cost a cast each.
    r = normalize_relevance(rel)
    gain = (lam * r).astype(np.float32)
    penalty_w = np.float32(1.0 - lam)
    out = np.empty(n, dtype=np.int64)
    j = int(r.argmax())  # nothing selected, no penalty: the most relevant item (also at lam=0)
    out[0] = j
    gain[j] = -np.inf  # selected items can never win again
    max_sim = sim[j].astype(np.float32)  # copy: updated in place below
    score = np.empty_like(gain)
    for t in range(1, n):
        np.multiply(max_sim, penalty_w, out=score)
        np.subtract(gain, score, out=score)
        j = int(score.argmax())
        out[t] = j
        gain[j] = -np.inf
        np.maximum(max_sim, sim[j], out=max_sim)
    return out
