"""Greedy MAP inference for a determinantal point process (DPP), O(N * k^2).

Fast greedy MAP inference (Chen, Zhang & Zhou, "Fast Greedy MAP Inference for Determinantal
Point Process to Improve Recommendation Diversity", NeurIPS 2018). The kernel is

    L = diag(q) (S + jitter * I) diag(q),   q = exp(alpha * r),   alpha = theta / (2 (1 - theta))

with ``r`` the min-max normalised relevance and ``S`` an item similarity kernel (PSD, unit
diagonal), so ``log det L_Y = 2 alpha sum_{i in Y} r_i + log det (S + jitter I)_Y``: ``theta``
trades relevance against diversity, 0 = diversity only, 1 = relevance only.

Each greedy step adds the item with the largest marginal gain ``d_i^2 = det L_{Y+i} / det L_Y``.
The gains come from an incrementally grown Cholesky factor of ``L_Y``: adding item ``j`` appends
one row ``e = (L_j - C^T c_j) / d_j`` to the ``[|Y|, N]`` matrix ``C`` of every item's
coefficients and lowers every gain by ``e^2``, O(N * |Y|) per step and O(N) kernel entries
read (only row ``j`` of ``L``; ``L`` is never built).

Why ``jitter``: a cosine kernel of ``d``-dimensional embeddings has rank at most ``d``, so after
``d`` picks every remaining gain is 0 and plain greedy DPP stops: a rank-64 kernel caps the list
at 64 items. Adding ``jitter`` to the diagonal makes ``L`` full-rank (every gain stays above
``jitter * min q^2 >= jitter``), so the greedy runs to any ``k``; once the embedding directions
are used up the extra items are ranked by relevance with a small diversity correction.

With ``window`` set (Algorithm 2 of the paper) only the last ``window`` picks condition the
gains: the oldest pick leaves the Cholesky factor through Givens rotations, O(N * window) per
step. Long lists then repeat themes only once they are ``window`` positions apart, instead of
being forced to ever more marginal items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.rerank.mmr import relevance_order
from funnelrec.rerank.similarity import normalize_relevance, validate_selection_inputs

MAX_ALPHA = 300.0  # cap on the quality exponent, see dpp_quality


@dataclass(frozen=True, slots=True)
class DPPSelection:
    """The outcome of :func:`dpp_greedy`.

    Attributes:
        positions: ``[n]`` int64 positions in selection order, ``n = min(k, N)``.
        log_gain: ``[g]`` float64 ``log d_j^2`` of the first ``g`` (greedy) picks; without a
            window their sum is ``log det L_Y`` of those picks. ``positions[g:]`` were filled by
            relevance after the best gain fell below ``epsilon`` (``g = 0`` when ``theta = 1``).
    """

    positions: NDArray[np.int64]
    log_gain: NDArray[np.float64]


def _check_params(theta: float, window: int | None, epsilon: float, jitter: float) -> None:
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must be in [0, 1], got {theta}")
    if window is not None and (isinstance(window, bool) or window < 1):
        raise ValueError(f"window must be None or an integer >= 1, got {window!r}")
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if not jitter >= 0.0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")


def dpp_quality(relevance: NDArray[np.floating], theta: float) -> NDArray[np.float64]:
    """``[N]`` per-item quality ``q = exp(alpha * r)``, ``alpha = theta / (2 (1 - theta))``.

    ``alpha`` is capped at ``MAX_ALPHA`` so that ``q^2 <= e^600`` stays finite in float64: any
    ``theta`` above ~0.9983 behaves like that one, where a relevance gap of 0.02 (normalised)
    already outweighs any diversity term (``log det`` of a jittered kernel is >= ``log jitter``
    per item). ``q >= 1`` keeps every gain of a jittered kernel above ``jitter``, so the
    absolute ``epsilon`` stop never fires there.

    Example:
        >>> dpp_quality(np.array([0.0, 1.0]), theta=0.5).round(4).tolist()
        [1.0, 1.6487]
    """
    if not 0.0 <= theta < 1.0:
        raise ValueError(f"theta must be in [0, 1) for a DPP kernel, got {theta}")
    alpha = min(theta / (2.0 * (1.0 - theta)), MAX_ALPHA)
    return np.exp(alpha * normalize_relevance(relevance))


@numba.njit(cache=True)
def _drop_oldest(
    V: NDArray[np.float64], C: NDArray[np.float64], d2: NDArray[np.float64], m: int
) -> None:
    """Remove window member 0 from the Cholesky factor, in place (Algorithm 2 of the paper).

    ``V`` ``[m, m]`` is the lower Cholesky factor of ``L_W`` and ``C`` ``[m, N]`` holds
    ``c_i = V^{-1} L_{W,i}``. With ``M = V[1:]`` (``[m-1, m]``), ``L_{W'} = M M^T``. Givens
    rotations ``G`` on the columns of ``M`` zero its first column, ``M G = [0 | V']`` with ``V'``
    lower triangular: the new factor. Then ``V' c'_i = M c_i = [0 | V'] G^T c_i``, so
    ``c'_i = (G^T c_i)[1:]`` and the gain grows back by the dropped coordinate,
    ``d'^2_i = d^2_i + (G^T c_i)_0^2``. O(m * N); numba because the ``m - 1`` rotations are a
    sequential loop (as NumPy calls they cost ~60 us per step for m = 10, as compiled code 2 us).
    """
    n = C.shape[1]
    for r in range(m - 1):
        b = r + 1
        x = V[r + 1, 0]
        y = V[r + 1, b]
        h = np.hypot(x, y)
        if h == 0.0:
            continue
        cs = y / h
        sn = x / h
        # Rows of M above r are zero in both columns already.
        for i in range(r + 1, m):
            v0 = V[i, 0]
            vb = V[i, b]
            V[i, 0] = cs * v0 - sn * vb
            V[i, b] = sn * v0 + cs * vb  # row r + 1: becomes h > 0, the new diagonal
        for i in range(n):
            c0 = C[0, i]
            cb = C[b, i]
            C[0, i] = cs * c0 - sn * cb
            C[b, i] = sn * c0 + cs * cb
    for i in range(n):
        d2[i] += C[0, i] * C[0, i]  # -inf (selected) stays -inf
    for r in range(m - 1):
        for c in range(m - 1):
            V[r, c] = V[r + 1, c + 1] if c <= r else 0.0
        V[r, m - 1] = 0.0
        for i in range(n):
            C[r, i] = C[r + 1, i]


@numba.njit(cache=True)
def _greedy_picks(
    q: NDArray[np.float64],
    sim: NDArray[np.floating],
    jitter: float,
    n: int,
    epsilon: float,
    window: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64], int]:
    """The greedy picks of :func:`dpp_greedy`: ``(positions [n], log gains [n], g)``, the
    first ``g`` filled (the loop stops early when the best gain falls below ``epsilon``).
    ``window < 1``: no window.

    Compiled: as NumPy calls each of the ``k`` steps costs ~10 small calls (~10 us per step,
    ~0.3 ms for a served list of 30), as a loop ~1 us. The update of a gain sums its ``m``
    products in order (BLAS may group them differently: the gains can differ in the last
    bits from the NumPy version).
    """
    n_items = q.shape[0]
    diag_l = np.empty(n_items, dtype=np.float64)  # L_ii
    for i in range(n_items):
        diag_l[i] = q[i] * q[i] * (np.float64(sim[i, i]) + jitter)
    cap = n if window < 1 else min(window, n)
    C = np.empty((cap, n_items), dtype=np.float64)
    V = np.zeros((cap, cap), dtype=np.float64)
    d2 = diag_l.copy()  # marginal gains; -inf once selected
    e = np.empty(n_items, dtype=np.float64)
    out = np.empty(n, dtype=np.int64)
    log_gain = np.empty(n, dtype=np.float64)
    m = 0  # rows of C in use = size of the conditioning set
    g = 0  # greedy picks made
    j = np.argmax(d2)
    while g < n:
        gain = d2[j]
        if not gain >= epsilon:  # also stops on NaN
            break
        out[g] = j
        log_gain[g] = np.log(gain)
        g += 1
        if g == n:
            break
        d2[j] = -np.inf
        dj = np.sqrt(gain)
        if window >= 1 and m == cap:
            _drop_oldest(V, C, d2, m)
            m -= 1
            norm2 = 0.0
            for r in range(m):
                norm2 += C[r, j] * C[r, j]
            # j's gain given the shrunk window: only larger than before (one fewer condition).
            dj = np.sqrt(max(diag_l[j] - norm2, gain))
        qj = q[j]
        for i in range(n_items):  # row j of L off the diagonal, minus what the picks explain
            dot = 0.0
            for r in range(m):
                dot += C[r, j] * C[r, i]
            e[i] = (qj * q[i] * sim[j, i] - dot) / dj
        for r in range(m):
            V[m, r] = C[r, j]
        V[m, m] = dj
        for i in range(n_items):
            C[m, i] = e[i]
            d2[i] -= e[i] * e[i]
        m += 1
        j = np.argmax(d2)
    return out, log_gain, g


def dpp_greedy(
    relevance: NDArray[np.floating],
    similarity: NDArray[np.floating],
    k: int,
    theta: float = 0.7,
    window: int | None = None,
    epsilon: float = 1e-6,
    jitter: float = 1e-3,
) -> DPPSelection:
    """Greedy DPP MAP selection with the gains of every greedy pick; see :func:`dpp_select`."""
    _check_params(theta, window, epsilon, jitter)
    rel, sim, n = validate_selection_inputs(relevance, similarity, k)
    if n == 0 or theta == 1.0:
        return DPPSelection(relevance_order(rel, n), np.empty(0, dtype=np.float64))
    q = dpp_quality(rel, theta)
    out, log_gain, g = _greedy_picks(
        q, np.ascontiguousarray(sim), jitter, n, epsilon, -1 if window is None else window
    )
    if g < n:
        # The best gain fell below epsilon (a rank-deficient kernel without jitter, or rounding):
        # no remaining item adds volume, so the rest of the list follows relevance.
        taken = np.zeros(rel.shape[0], dtype=bool)
        taken[out[:g]] = True
        rest = relevance_order(rel, rel.shape[0])
        out[g:] = rest[~taken[rest]][: n - g]
    return DPPSelection(out, log_gain[:g])


def dpp_select(
    relevance: NDArray[np.floating],
    similarity: NDArray[np.floating],
    k: int,
    theta: float = 0.7,
    window: int | None = None,
    epsilon: float = 1e-6,
    jitter: float = 1e-3,
) -> NDArray[np.int64]:
    """Greedy DPP MAP re-ranking: ``k`` positions in selection order.

    Each step adds the item maximising ``log det L_{Y+i}`` (see the module docstring for the
    kernel). If the best marginal gain ``d_j^2`` drops below ``epsilon`` (only possible with a
    rank-deficient kernel, i.e. ``jitter`` too small for ``k`` beyond the embedding rank), the
    remaining slots are filled with the unselected items by relevance, descending. ``theta = 1``
    returns the relevance sort. Ties go to the lower position.

    Args:
        relevance: ``[N]`` finite scores, higher is better (min-max normalised inside).
        similarity: ``[N, N]`` PSD item kernel with unit diagonal, e.g. from
            :func:`~funnelrec.rerank.similarity.item_kernel`.
        k: how many to select, ``>= 0``; ``k > N`` returns all ``N``.
        theta: relevance weight in ``[0, 1]``.
        window: condition each pick only on the last ``window`` picks (None = all picks).
        epsilon: smallest marginal gain a greedy pick may have.
        jitter: added to the diagonal of ``S``; keeps the kernel full-rank (see module doc).

    Returns:
        ``[min(k, N)]`` int64 positions into ``relevance``, in selection order.

    Example:
        >>> sim = np.array([[1.0, 0.99, 0.0], [0.99, 1.0, 0.0], [0.0, 0.0, 1.0]])
        >>> dpp_select(np.array([1.0, 0.9, 0.5]), sim, k=3, theta=0.5).tolist()
        [0, 2, 1]
    """
    return dpp_greedy(relevance, similarity, k, theta, window, epsilon, jitter).positions


def dpp_log_det(
    similarity: NDArray[np.floating],
    relevance: NDArray[np.floating],
    theta: float,
    jitter: float,
    selected: NDArray[np.integer],
) -> float:
    """``log det L_Y`` for the positions ``selected``, computed directly (a test oracle).

    Args:
        similarity: ``[N, N]`` item kernel.
        relevance: ``[N]`` scores (min-max normalised inside, as in :func:`dpp_select`).
        theta: relevance weight in ``[0, 1)``.
        jitter: added to the diagonal of ``S``.
        selected: ``[m]`` positions; empty gives 0.

    Returns:
        The log-determinant, ``-inf`` for a singular ``L_Y``.

    Example:
        >>> round(dpp_log_det(np.eye(2), np.array([0.0, 1.0]), 0.5, 0.0, np.array([0, 1])), 4)
        1.0
    """
    rel, sim, _ = validate_selection_inputs(relevance, similarity, 0)
    q = dpp_quality(rel, theta)
    y = np.asarray(selected, dtype=np.int64)
    sub = sim[np.ix_(y, y)].astype(np.float64) + jitter * np.eye(y.size)
    sign, logdet = np.linalg.slogdet(q[y, None] * sub * q[None, y])
    return float(logdet) if sign > 0 else float("-inf")
