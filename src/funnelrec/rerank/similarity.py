"""Item-item similarity kernels for re-ranking: cosine of embeddings, shared category, a blend.

Every kernel is symmetric, positive semi-definite and has a unit diagonal, so it can serve both
MMR (which only reads off-diagonal similarities) and DPP (which needs a PSD kernel whose diagonal
is an item's "volume"). An item without data is similar to nothing: a zero row off the diagonal.
The input checks and the relevance normalisation that MMR and DPP share live here too.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray


def cosine_kernel(emb: NDArray[np.floating]) -> NDArray[np.float32]:
    """Cosine similarity of every pair of rows.

    Rows are L2-normalised here. A zero row (an item without an embedding) is orthogonal to every
    other row; the diagonal is exactly 1 for every row, zero ones included, so the kernel stays
    PSD and an unknown item counts as a full, independent direction for DPP.

    Args:
        emb: ``[N, d]`` item embeddings.

    Returns:
        ``[N, N]`` float32 similarities in ``[-1, 1]``.

    Example:
        >>> cosine_kernel(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])).tolist()
        [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    x = np.asarray(emb, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"emb must be a 2-D [N, d] array, got shape {x.shape}")
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    # Dividing by 1 leaves a zero row at zero instead of producing NaN.
    x = x / np.where(norm > 0, norm, 1.0).astype(np.float32)[:, None]
    sim = x @ x.T
    np.fill_diagonal(sim, 1.0)
    return sim


def category_kernel(cat: NDArray[np.integer]) -> NDArray[np.float32]:
    """1 for a pair of items in the same known category, 0 otherwise; the diagonal is 1.

    Args:
        cat: ``[N]`` category codes, negative = unknown (similar to nothing but itself).

    Returns:
        ``[N, N]`` float32 in ``{0, 1}``; PSD (a block of ones per category plus identity).

    Example:
        >>> category_kernel(np.array([3, 3, -1])).tolist()
        [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    c = np.asarray(cat)
    if c.ndim != 1:
        raise ValueError(f"cat must be a 1-D [N] array, got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"cat must hold integer codes, got dtype {c.dtype}")
    same = (c[:, None] == c[None, :]) & (c >= 0)[:, None]
    sim = same.astype(np.float32)
    np.fill_diagonal(sim, 1.0)
    return sim


def item_kernel(
    emb: NDArray[np.floating] | None,
    cat: NDArray[np.integer] | None,
    category_weight: float,
) -> NDArray[np.float32]:
    """``(1 - w) * cosine_kernel(emb) + w * category_kernel(cat)``, or whichever one is given.

    A convex blend of PSD kernels with unit diagonals is again one, so the result suits DPP.

    Args:
        emb: ``[N, d]`` embeddings, or None.
        cat: ``[N]`` category codes (negative = unknown), or None.
        category_weight: ``w`` in ``[0, 1]``; only used when both are given.

    Returns:
        ``[N, N]`` float32 kernel.

    Example:
        >>> emb = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> item_kernel(emb, np.array([7, 7]), 0.5).tolist()
        [[1.0, 0.5], [0.5, 1.0]]
    """
    if not 0.0 <= category_weight <= 1.0:
        raise ValueError(f"category_weight must be in [0, 1], got {category_weight}")
    if emb is None and cat is None:
        raise ValueError("item_kernel needs embeddings or categories; both are None")
    if cat is None:
        return cosine_kernel(emb)  # type: ignore[arg-type]
    if emb is None:
        return category_kernel(cat)
    n_emb, n_cat = np.shape(emb)[0], np.shape(cat)[0]
    if n_emb != n_cat:
        raise ValueError(f"emb has {n_emb} rows but cat has {n_cat} entries")
    c = np.asarray(cat)
    if c.ndim != 1:
        raise ValueError(f"cat must be a 1-D [N] array, got shape {c.shape}")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"cat must hold integer codes, got dtype {c.dtype}")
    sim = cosine_kernel(emb)
    _blend_categories(
        sim, c.astype(np.int64), np.float32(1.0 - category_weight), np.float32(category_weight)
    )
    return sim


@numba.njit(cache=True)
def _blend_categories(
    sim: NDArray[np.float32], cat: NDArray[np.int64], keep: np.float32, weight: np.float32
) -> None:
    """``sim = keep * sim + weight * category_kernel(cat)`` in place, in float32 with the
    NumPy version's operation order (the same bits): one pass instead of ~8 NumPy calls on
    a request's 100 x 100 kernel."""
    n = cat.shape[0]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for i in range(n):
        for j in range(n):
            same = one if i == j or (cat[i] >= 0 and cat[i] == cat[j]) else zero
            scaled = sim[i, j] * keep
            sim[i, j] = scaled + weight * same


def normalize_relevance(relevance: NDArray[np.floating]) -> NDArray[np.float64]:
    """Min-max scale relevance to ``[0, 1]`` (all zeros when every value is equal).

    MMR's ``lam`` and DPP's ``theta`` weigh relevance against similarities that live in
    ``[-1, 1]``; without a fixed scale the same ``lam`` would mean "mostly relevance" for logits
    in the tens and "mostly diversity" for probabilities around 0.01.

    Args:
        relevance: ``[N]`` finite scores, higher is better.

    Returns:
        ``[N]`` float64 in ``[0, 1]``, order-preserving (ties may appear only through rounding).

    Example:
        >>> normalize_relevance(np.array([2.0, 4.0, 3.0])).tolist()
        [0.0, 1.0, 0.5]
    """
    r = np.asarray(relevance, dtype=np.float64)
    if r.size == 0:
        return r.copy()
    lo, hi = r.min(), r.max()
    if not hi > lo:
        return np.zeros_like(r)
    return (r - lo) / (hi - lo)


def validate_selection_inputs(
    relevance: NDArray[np.floating], similarity: NDArray[np.floating], k: int
) -> tuple[NDArray[np.float64], NDArray[np.floating], int]:
    """Check the inputs of a greedy list selector (MMR, DPP).

    Args:
        relevance: ``[N]`` finite scores.
        similarity: ``[N, N]`` kernel (its finiteness is not checked: that costs as much as a
            whole MMR run; the kernels of this module are always finite).
        k: how many items to select, ``>= 0``.

    Returns:
        ``(relevance [N] float64, similarity [N, N], min(k, N))``.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    sim = np.asarray(similarity)
    if rel.ndim != 1:
        raise ValueError(f"relevance must be a 1-D [N] array, got shape {rel.shape}")
    n = rel.shape[0]
    if sim.shape != (n, n):
        raise ValueError(
            f"similarity must be [N, N] = [{n}, {n}] to match relevance, got shape {sim.shape}"
        )
    if not np.issubdtype(sim.dtype, np.floating):
        sim = sim.astype(np.float32)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    if not np.isfinite(rel).all():
        raise ValueError("relevance must be finite (no NaN or inf)")
    return rel, sim, min(int(k), n)
