"""The compiled kernels of :mod:`funnelrec.recall.evidence`: the candidates' hash table, the
per-channel rank columns, the cosines to the history and the similarity sums. Each writes
float32 values at a candidate's row, one pass over the entries, so a served request's ~500
candidates cost no per-entry Python or polars call."""

from __future__ import annotations

import numba
import numpy as np

RECENT = 5
"""Items in the "recent" similarity features."""
PROFILE = 50
"""History items averaged into the vector profile (the channels' own default history length)."""
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
"""2^64 / golden ratio: the multiplier of Fibonacci hashing (codes are near-sequential)."""


@numba.njit(cache=True)
def slot(code, shift):  # pragma: no cover - compiled
    """The home slot of ``code >= 0`` in a table of ``2 ** (64 - shift)`` slots."""
    return np.int64((np.uint64(code) * _FIBONACCI) >> np.uint64(shift))


@numba.njit(cache=True)
def code_table(query_ids, candidate_query, candidate_item):  # pragma: no cover - compiled
    """The fields of :class:`_Candidates`, in order, for candidates ``(candidate_query,
    candidate_item)`` of the queries ``query_ids`` (a candidate of an id not among them has
    row -1); the codes inserted by linear probing. One compiled call: the dozen NumPy calls
    it replaces cost ~25 us a request."""
    n = candidate_query.shape[0]
    row_of = np.full(query_ids.max() + 1, -1, dtype=np.int64)
    for r in range(query_ids.shape[0]):
        row_of[query_ids[r]] = r
    rows = np.full(n, -1, dtype=np.int64)
    items = candidate_item.astype(np.int64)
    for j in range(n):
        if 0 <= candidate_query[j] < row_of.shape[0]:
            rows[j] = row_of[candidate_query[j]]
    stride = max(items.max(), 0) + 1 if n else 1
    bits = 1
    while (1 << bits) < 4 * n:
        bits += 1
    keys = np.full(1 << bits, -1, dtype=np.int64)
    heads = np.empty(1 << bits, dtype=np.int64)
    first = np.full(n, -1, dtype=np.int64)
    shift = 64 - bits
    for j in range(n):
        if rows[j] < 0 or items[j] < 0:
            continue
        code = rows[j] * stride + items[j]
        at = slot(code, shift)
        while keys[at] >= 0 and keys[at] != code:
            at = (at + 1) & (keys.shape[0] - 1)
        if keys[at] < 0:
            keys[at], heads[at] = code, j
        first[j] = heads[at]
    return rows, items, stride, keys, heads, shift, first


@numba.njit(cache=True)
def find(keys, heads, shift, stride, row, item):  # pragma: no cover - compiled
    """The first candidate of ``(row, item)``, or -1 (none), in :class:`_Candidates`' table.
    (Arrays, not the table's tuple: a tuple's unpacking per call cost ~2x the lookup.)"""
    if item < 0 or item >= stride:
        return -1
    code = row * stride + item
    mask = keys.shape[0] - 1
    at = slot(code, shift)
    while keys[at] >= 0:
        if keys[at] == code:
            return heads[at]
        at = (at + 1) & mask
    return -1


@numba.njit(cache=True)
def copy_to_repeats(out, first):  # pragma: no cover - compiled
    """``out[:, j] = out[:, first[j]]`` for each repeat ``j`` of an earlier candidate."""
    for j in range(first.shape[0]):
        if first[j] >= 0 and first[j] != j:
            for k in range(out.shape[0]):
                out[k, j] = out[k, first[j]]


@numba.njit(cache=True)
def rank_columns(item, score, shapes, log1p, index, out):  # pragma: no cover - compiled
    """Fill ``out [3 C + 1, N]`` (zeros): per channel ``c`` rows ``3 c`` (1 where it returned
    the candidate), ``3 c + 1`` (log1p of its 1-based position there), ``3 c + 2`` (its
    score, non-finite = 0); the last row counts the channels that returned it.

    ``item`` and ``score`` are the channels' ``[B, W_c]`` results (``shapes[c]``), row-major
    one after another; a channel's rows are sorted best first, so its first entry of an
    item counts (a duplicate later in the row does not)."""
    keys, heads, shift, stride, first = index
    count = out[out.shape[0] - 1]
    e = 0
    for c in range(shapes.shape[0]):
        hit, logrank, value = out[3 * c], out[3 * c + 1], out[3 * c + 2]
        for row in range(shapes[c, 0]):
            for col in range(shapes[c, 1]):
                j = find(keys, heads, shift, stride, row, np.int64(item[e]))
                if j >= 0 and hit[j] == 0:
                    hit[j] = 1.0
                    logrank[j] = log1p[col + 1]
                    value[j] = score[e] if np.isfinite(score[e]) else 0.0
                    count[j] += 1.0
                e += 1
    copy_to_repeats(out, first)


@numba.njit(cache=True)
def touch_rows(vectors, items):  # pragma: no cover - compiled
    """Read one value per 64-byte line of each candidate's vector before the arithmetic.

    A served request finds most of these rows out of cache, and the cosine loop, ~100
    instructions a candidate, has only a couple of rows' misses in flight at a time; these
    bare loads have tens, which halved the cosines' time in a served request. Returns the
    sum read, only so the loads are not optimised away."""
    total = 0.0
    line = max(64 // vectors.itemsize, 1)
    for j in range(items.shape[0]):
        if 0 <= items[j] < vectors.shape[0]:
            for d in range(0, vectors.shape[1], line):
                total += vectors[items[j], d]
    return total


@numba.njit(cache=True)
def unit_scale(vec):  # pragma: no cover - compiled
    """``1 / |vec|`` in float64 (``1e12`` for a zero vector), summed in order as ``np.sum``."""
    total = 0.0
    for d in range(vec.shape[0]):
        x = np.float64(vec[d])
        total += x * x
    return 1.0 / max(np.sqrt(total), 1e-12)


@numba.njit(cache=True)
def cosines(vectors, row, item, rank, n_rows, rows, items, out):  # pragma: no cover - compiled
    """Fill ``out [3, N]`` with the cosine of candidate ``(rows[j], items[j])`` and the mean
    direction of its query's recent items of rank < 1, :data:`RECENT` and :data:`PROFILE`
    (0 for unknown items, queries without history); the recent items are ``(row, item,
    rank)`` entries. Float64 throughout; the profiles summed in order."""
    dim = vectors.shape[1]
    lasts = (1, RECENT, PROFILE)
    # Per query, the sum of the unit vectors of its last ``lasts[k]`` items: the direction of
    # their mean, all a cosine needs.
    sums = np.zeros((n_rows, 3, dim))
    for e in range(row.shape[0]):
        vec = vectors[item[e]]
        scale = unit_scale(vec)
        for k in range(3):
            if rank[e] < lasts[k]:
                for d in range(dim):
                    sums[row[e], k, d] += vec[d] * scale
    for r in range(n_rows):
        for k in range(3):
            scale = unit_scale(sums[r, k])
            for d in range(dim):
                sums[r, k, d] *= scale
    for j in range(rows.shape[0]):
        it, r = items[j], rows[j]
        if it < 0 or it >= vectors.shape[0] or r < 0:
            continue
        norm, dot0, dot1, dot2 = norm_and_dots(vectors[it], sums[r])
        scale = 1.0 / max(np.sqrt(norm), 1e-12)
        out[0, j] = dot0 * scale
        out[1, j] = dot1 * scale
        out[2, j] = dot2 * scale


@numba.njit(cache=True, fastmath={"reassoc"})
def norm_and_dots(vec, mean):  # pragma: no cover - compiled
    """``(|vec|^2, vec . mean[0], vec . mean[1], vec . mean[2])`` in float64."""
    norm = dot0 = dot1 = dot2 = 0.0
    for d in range(vec.shape[0]):
        x = np.float64(vec[d])
        norm += x * x
        dot0 += x * mean[0, d]
        dot1 += x * mean[1, d]
        dot2 += x * mean[2, d]
    return norm, dot0, dot1, dot2


@numba.njit(cache=True)
def add_products(sums, row, item, weight, in_float32, sim, index):  # pragma: no cover
    """``sums[j] += weight * sim[item, t]`` for each neighbour ``t`` of ``item`` whose
    ``(row, t)`` is candidate ``j``'s (the first of its code): the product in float64 (exact
    for float32 operands), rounded and added in float32 when ``in_float32`` (a float64 sum of
    two float32s rounds to their float32 sum)."""
    indptr, indices, data = sim
    keys, heads, shift, stride, _ = index
    for p in range(indptr[item], indptr[item + 1]):
        j = find(keys, heads, shift, stride, row, np.int64(indices[p]))
        if j >= 0:
            product = weight * np.float64(data[p])
            if in_float32:
                sums[j] = np.float32(sums[j] + np.float32(product))
            else:
                sums[j] += product


@numba.njit(cache=True)
def similarity_sums(recent, weights, in_float32, sim, index, out):  # pragma: no cover
    """Fill ``out [3, N]`` (zeros): each candidate's similarity to its query's last item
    (weight 1), recent items (weight 1 / their count) and weighted history (``weights``,
    CSR ``(ptr, item, weight)``); each history's entries taken row by row, items ascending
    (``weights`` in its stored order), as scipy's product ``H @ sim`` takes them.

    ``recent`` is ``(row, item, rank)`` sorted by row then rank, ``sim`` the CSR arrays
    ``(indptr, indices, data)`` and ``index`` the :class:`_Candidates` table ``(keys,
    heads, shift, stride, first)``."""
    recent_row, recent_item, recent_rank = recent
    sums = np.zeros((3, out.shape[1]))
    start = 0
    while start < recent_row.shape[0]:
        row, stop = recent_row[start], start
        while stop < recent_row.shape[0] and recent_row[stop] == row:
            stop += 1
        for k, last in ((0, 1), (1, RECENT)):
            near = recent_item[start:stop][recent_rank[start:stop] < last]
            weight = 1.0 if k == 0 else 1.0 / near.shape[0]
            for item in np.sort(near):
                add_products(sums[k], row, item, weight, False, sim, index)
        start = stop
    ptr, item, value = weights
    for row in range(ptr.shape[0] - 1):
        for e in range(ptr[row], ptr[row + 1]):
            add_products(sums[2], row, item[e], np.float64(value[e]), in_float32, sim, index)
    first = index[4]
    for j in range(first.shape[0]):
        if first[j] >= 0:
            for k in range(3):
                out[k, j] = sums[k, first[j]]
