"""Recall evidence: what the recall stage knows about each merged candidate, as columns the
ranker can learn from.

The merge keeps one source per candidate; the ranker is better served by all of it (the
news-recommendation recipe of the source notes: ItemCF and embedding similarities, ranks and
time gaps, then a learned ranker). For every channel ``c`` and candidate:

* ``ev_<c>_hit`` (1 when ``c`` returned the item), ``ev_<c>_logrank`` (``log1p`` of its
  position there) and ``ev_<c>_score`` (the channel's own score); both 0 when missing, so a
  model learns the missing value's effect through the hit flag (the "learned default");
* channels with item vectors (two-tower, content): cosine between the candidate and the
  user's last item, the mean of the last :data:`RECENT` items, and the mean of the whole
  (channel-capped) history: ``ev_<c>_cos_last``, ``ev_<c>_cos_recent``, ``ev_<c>_cos_profile``;
* channels with an item-item similarity matrix (ItemCF): the similarity to the last item,
  the mean over the last :data:`RECENT` items and the whole recency-weighted history (the channel's
  own score, for every candidate, not only those it returned): ``ev_<c>_sim_last``,
  ``ev_<c>_sim_recent``, ``ev_<c>_sim_all``;
* ``ev_n_channels`` (how many channels returned the item) and ``ev_merged_logrank``.

Everything reads the query's history as of its timestamp and the fitted channels, so it is
point-in-time safe wherever the channels are (the ranking window's recall is fitted on the
time before the window).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numba
import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.features.pit.evidence import EVIDENCE_PREFIX as PREFIX
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.history import RecentItems, recent_items

_NewFloat32 = Callable[[str, NDArray[np.float32], bool], Any]
_new_f32: _NewFloat32 | None
try:  # polars' own Float32 constructor (see _float32_series); absent in another polars
    from polars._plr import PySeries

    _new_f32 = PySeries.new_f32
except ImportError:  # pragma: no cover - depends on the polars build
    _new_f32 = None

RECENT = 5
"""Items in the "recent" similarity features."""
PROFILE = 50
"""History items averaged into the vector profile (the channels' own default history length)."""


@runtime_checkable
class ItemSimilarity(Protocol):
    """A channel with an item-item similarity matrix (ItemCF). It may also offer
    ``history_rows(queries) -> (ptr, item, weight)``, the CSR arrays of
    ``history_weights``, which the evidence then reads instead of the matrix."""

    def similarity_matrix(self) -> sp.csr_matrix: ...

    def history_weights(self, queries: Queries) -> sp.csr_matrix: ...


def add_evidence(
    candidates: pl.DataFrame,
    results: dict[str, ChannelResult],
    queries: Queries,
    channels: dict[str, Retriever],
) -> pl.DataFrame:
    """``candidates`` with the ``ev_*`` columns (module docstring), Float32, rows unchanged.

    Each family of columns is one compiled pass over the candidates' arrays, all finding a
    (query, item) among the candidates through one hash table (:class:`_Candidates`): the
    served request's cost was NumPy's and polars' fixed per-call overhead, not arithmetic.

    Args:
        candidates: merged Candidates (``query_id, item_idx, merged_rank, ...``).
        results: each channel's result for ``queries``, rows aligned with them.
        queries: the batch the candidates answer.
        channels: the fitted channels (for vectors and similarity matrices).
    """
    if candidates.height == 0:
        return candidates
    index = _Candidates.of(candidates, queries)
    columns, n_channels = _rank_evidence(results, index)
    history = _History(queries)
    for name, channel in channels.items():
        if _has_similarity_matrix(channel):
            columns.update(_matrix_similarities(name, channel, history, index))
        else:
            vectors = channel.similarity_vectors()
            if vectors is not None:
                columns.update(_vector_similarities(name, vectors, history, index))
    columns[f"{PREFIX}n_channels"] = n_channels
    merged = candidates["merged_rank"].to_numpy().astype(np.float64)
    columns[f"{PREFIX}merged_logrank"] = np.log1p(merged).astype(np.float32)
    series = [_float32_series(name, values) for name, values in columns.items()]
    if any(name in columns for name in candidates.columns):
        return candidates.with_columns(series)  # replaced in place, as with_columns does
    # hstack: with_columns over the ~35 new columns cost ~0.3 ms more on a served request.
    return candidates.hstack(series)


def _float32_series(name: str, values: NDArray[np.float32]) -> pl.Series:
    """``pl.Series(name, values)`` of a Float32 array through polars' own constructor: the
    public one spends ~5 us a column on checks (byte order, masks, contiguity) that these
    fresh contiguous arrays pass, ~0.15 ms of a served request's ~32 columns."""
    values = np.ascontiguousarray(values, dtype=np.float32)  # it panics on a strided view
    if _new_f32 is None:  # pragma: no cover - depends on the polars build
        return pl.Series(name, values)
    return pl.Series._from_pyseries(_new_f32(name, values, False))


def _has_similarity_matrix(channel: object) -> TypeGuard[ItemSimilarity]:
    """``isinstance(channel, ItemSimilarity)`` by the same rule (each member present and not
    None): the runtime protocol check took ~15 us per channel and request."""
    return all(
        getattr(channel, member, None) is not None
        for member in ("similarity_matrix", "history_weights")
    )


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The candidates' query rows and items, and a hash table from their codes
    ``row * stride + item`` to the first candidate of each code: a channel entry or a
    similarity product finds its candidate in O(1) (a join per channel, or a sort and a
    binary search per entry, cost a served request tens of microseconds each).

    The kernels write each (query, item)'s values at its first candidate and copy them to
    the rare repeats (:func:`_copy_to_repeats`).

    Attributes:
        rows: ``[N]`` int64 query row of each candidate (-1: no query of the batch).
        items: ``[N]`` int64 item_idx.
        stride: one more than the largest candidate item; a looked-up item at or above it is
            no candidate (and would alias another code), so the kernels skip it.
        keys: ``[T]`` int64 open-addressing table of codes (-1 = empty slot), ``T`` a power
            of two at least ``4 N``.
        heads: ``[T]`` int64 the first candidate of each slot's code.
        shift: ``64 - log2(T)``, the hash's shift.
        first: ``[N]`` int64 the first candidate of each candidate's code (-1 for a
            candidate of no query or no item, which nothing looks up).
    """

    rows: NDArray[np.int64]
    items: NDArray[np.int64]
    stride: int
    keys: NDArray[np.int64]
    heads: NDArray[np.int64]
    shift: int
    first: NDArray[np.int64]

    @classmethod
    def of(cls, candidates: pl.DataFrame, queries: Queries) -> _Candidates:
        """The index of ``candidates`` (``query_id``, ``item_idx``) answering ``queries``."""
        return cls(
            *_code_table(
                queries.query_id,
                candidates.get_column("query_id").to_numpy(),
                candidates.get_column("item_idx").to_numpy(),
            )
        )

    def table(self) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int, NDArray[np.int64]]:
        """``(keys, heads, shift, stride, first)``: the table as the kernels take it."""
        return self.keys, self.heads, self.shift, self.stride, self.first


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
"""2^64 / golden ratio: the multiplier of Fibonacci hashing (codes are near-sequential)."""


@numba.njit(cache=True)
def _slot(code, shift):  # pragma: no cover - compiled
    """The home slot of ``code >= 0`` in a table of ``2 ** (64 - shift)`` slots."""
    return np.int64((np.uint64(code) * _FIBONACCI) >> np.uint64(shift))


@numba.njit(cache=True)
def _code_table(query_ids, candidate_query, candidate_item):  # pragma: no cover - compiled
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
        at = _slot(code, shift)
        while keys[at] >= 0 and keys[at] != code:
            at = (at + 1) & (keys.shape[0] - 1)
        if keys[at] < 0:
            keys[at], heads[at] = code, j
        first[j] = heads[at]
    return rows, items, stride, keys, heads, shift, first


@numba.njit(cache=True)
def _find(keys, heads, shift, stride, row, item):  # pragma: no cover - compiled
    """The first candidate of ``(row, item)``, or -1 (none), in :class:`_Candidates`' table.
    (Arrays, not the table's tuple: a tuple's unpacking per call cost ~2x the lookup.)"""
    if item < 0 or item >= stride:
        return -1
    code = row * stride + item
    mask = keys.shape[0] - 1
    at = _slot(code, shift)
    while keys[at] >= 0:
        if keys[at] == code:
            return heads[at]
        at = (at + 1) & mask
    return -1


@numba.njit(cache=True)
def _copy_to_repeats(out, first):  # pragma: no cover - compiled
    """``out[:, j] = out[:, first[j]]`` for each repeat ``j`` of an earlier candidate."""
    for j in range(first.shape[0]):
        if first[j] >= 0 and first[j] != j:
            for k in range(out.shape[0]):
                out[k, j] = out[k, first[j]]


def _rank_evidence(
    results: dict[str, ChannelResult], index: _Candidates
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.float32]]:
    """The ``hit``, ``logrank`` and ``score`` columns of every channel and the number of
    channels that returned each candidate."""
    n_channels = len(results)
    out = np.zeros((3 * n_channels + 1, index.rows.shape[0]), dtype=np.float32)
    if n_channels:
        shapes = np.array([r.item_idx.shape for r in results.values()], dtype=np.int64)
        _rank_columns(
            np.concatenate([r.item_idx.ravel() for r in results.values()]),
            np.concatenate([r.score.ravel() for r in results.values()]),
            shapes,
            _log1p_positions(int(shapes[:, 1].max())),
            index.table(),
            out,
        )
    columns: dict[str, NDArray[np.float32]] = {}
    for c, name in enumerate(results):
        columns[f"{PREFIX}{name}_hit"] = out[3 * c]
        columns[f"{PREFIX}{name}_logrank"] = out[3 * c + 1]
        columns[f"{PREFIX}{name}_score"] = out[3 * c + 2]
    return columns, out[-1]


@functools.cache
def _log1p_positions(width: int) -> NDArray[np.float32]:
    """``log1p(0 .. width)`` by NumPy's log1p, as float32: the logrank of each position with
    the rounding it always had, computed once per result width (read-only: shared)."""
    table = np.log1p(np.arange(width + 1, dtype=np.float64)).astype(np.float32)
    table.flags.writeable = False
    return table


@numba.njit(cache=True)
def _rank_columns(item, score, shapes, log1p, index, out):  # pragma: no cover - compiled
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
                j = _find(keys, heads, shift, stride, row, np.int64(item[e]))
                if j >= 0 and hit[j] == 0:
                    hit[j] = 1.0
                    logrank[j] = log1p[col + 1]
                    value[j] = score[e] if np.isfinite(score[e]) else 0.0
                    count[j] += 1.0
                e += 1
    _copy_to_repeats(out, first)


class _History:
    """The batch's recent distinct history items (the channels' rule,
    :func:`~funnelrec.recall.history.recent_items`), found once for every feature that reads
    them: "last", "recent" and "profile" are its entries of rank < 1, < :data:`RECENT` and
    < :data:`PROFILE`."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries
        self._recent: dict[int, RecentItems] = {}
        history = queries.history_item
        self._items_seen = int(history.max()) + 1 if history.shape[0] else 0

    def recent(self, n_items: int) -> RecentItems:
        """Up to ``max(RECENT, PROFILE)`` items per query, items outside ``n_items`` skipped.

        Catalogues larger than every history item give the same items, so they share one
        search (the vector and similarity channels' catalogues differ in size)."""
        n_items = min(n_items, self._items_seen)
        if n_items not in self._recent:
            usable = np.ones(n_items, dtype=bool)
            self._recent[n_items] = recent_items(self.queries, max(RECENT, PROFILE), usable)
        return self._recent[n_items]


def _vector_similarities(
    name: str, vectors: NDArray[np.float32], history: _History, index: _Candidates
) -> dict[str, NDArray[np.float32]]:
    """Cosine of each candidate with the user's last item, recent mean and profile.

    One compiled pass (:func:`_cosines`): the NumPy version (normalise the candidates' and
    history items' vectors, scatter-add the profiles, gather one per candidate) cost ~0.3 ms
    a channel and request in fixed calls, and its gather held ``[3, N, D]`` float64 on an
    offline batch. Only the vectors used are normalised, never the catalogue."""
    recent = history.recent(vectors.shape[0])
    out = np.zeros((3, index.rows.shape[0]), dtype=np.float32)
    vectors = np.ascontiguousarray(vectors)
    _touch_rows(vectors, index.items)
    _cosines(
        vectors,
        recent.row,
        recent.item,
        recent.rank,
        len(history.queries),
        index.rows,
        index.items,
        out,
    )
    return {
        f"{PREFIX}{name}_cos_{suffix}": out[k]
        for k, suffix in enumerate(("last", "recent", "profile"))
    }


@numba.njit(cache=True)
def _touch_rows(vectors, items):  # pragma: no cover - compiled
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
def _unit_scale(vec):  # pragma: no cover - compiled
    """``1 / |vec|`` in float64 (``1e12`` for a zero vector), summed in order as ``np.sum``."""
    total = 0.0
    for d in range(vec.shape[0]):
        x = np.float64(vec[d])
        total += x * x
    return 1.0 / max(np.sqrt(total), 1e-12)


@numba.njit(cache=True)
def _cosines(vectors, row, item, rank, n_rows, rows, items, out):  # pragma: no cover - compiled
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
        scale = _unit_scale(vec)
        for k in range(3):
            if rank[e] < lasts[k]:
                for d in range(dim):
                    sums[row[e], k, d] += vec[d] * scale
    for r in range(n_rows):
        for k in range(3):
            scale = _unit_scale(sums[r, k])
            for d in range(dim):
                sums[r, k, d] *= scale
    for j in range(rows.shape[0]):
        it, r = items[j], rows[j]
        if it < 0 or it >= vectors.shape[0] or r < 0:
            continue
        norm, dot0, dot1, dot2 = _norm_and_dots(vectors[it], sums[r])
        scale = 1.0 / max(np.sqrt(norm), 1e-12)
        out[0, j] = dot0 * scale
        out[1, j] = dot1 * scale
        out[2, j] = dot2 * scale


# Reassociated (SIMD) sums: ~2.5x faster than the in-order ones this pass had, and the same
# float32 results but with odds ~1e-8 per value: a float64 sum reordered moves by ~1e-16
# relative, and only a value that close to a float32 rounding boundary rounds otherwise.
@numba.njit(cache=True, fastmath={"reassoc"})
def _norm_and_dots(vec, mean):  # pragma: no cover - compiled
    """``(|vec|^2, vec . mean[0], vec . mean[1], vec . mean[2])`` in float64."""
    norm = dot0 = dot1 = dot2 = 0.0
    for d in range(vec.shape[0]):
        x = np.float64(vec[d])
        norm += x * x
        dot0 += x * mean[0, d]
        dot1 += x * mean[1, d]
        dot2 += x * mean[2, d]
    return norm, dot0, dot1, dot2


def _matrix_similarities(
    name: str, channel: ItemSimilarity, history: _History, index: _Candidates
) -> dict[str, NDArray[np.float32]]:
    """Item-item similarity of each candidate to the last item, the mean over the recent ones
    (weights 1 / count) and the channel's recency-weighted sum over the whole history.

    No product matrix is formed (a scipy matrix per history and a product cost ~0.1 ms
    each on a served request): :func:`_similarity_sums` expands each history entry into its
    similarity row and keeps the products that land on a candidate, summed in the order
    and dtype scipy's CSR product sums them, so the sums are the same floats."""
    sim = channel.similarity_matrix()
    if not (sp.issparse(sim) and sim.format == "csr"):
        sim = sp.csr_matrix(sim)
    n_items = sim.shape[0]
    weights = _history_rows(channel, history.queries, n_items)
    recent = history.recent(n_items)
    # The "last" and "recent" weights are float64, so are their products; the channel's own
    # weights times the similarities are summed in scipy's result dtype.
    in_float32 = bool(np.result_type(weights[2].dtype, sim.dtype) == np.float32)
    out = np.zeros((3, index.rows.shape[0]), dtype=np.float32)
    _similarity_sums(
        (recent.row, recent.item, recent.rank),
        weights,
        in_float32,
        (sim.indptr, sim.indices, sim.data),
        index.table(),
        out,
    )
    return {
        f"{PREFIX}{name}_sim_{suffix}": out[k] for k, suffix in enumerate(("last", "recent", "all"))
    }


def _history_rows(
    channel: ItemSimilarity, queries: Queries, n_items: int
) -> tuple[NDArray[np.integer], NDArray[np.integer], NDArray[np.floating]]:
    """The channel's history weights as CSR arrays ``(ptr, item, weight)``: from its
    ``history_rows`` where it has one (ItemCF: no scipy matrix built per request), else
    from the matrix of ``history_weights``."""
    history_rows = getattr(channel, "history_rows", None)
    if history_rows is not None:
        ptr, item, weight = history_rows(queries)
        return ptr, item, weight
    weights = channel.history_weights(queries)
    if not (sp.issparse(weights) and weights.format == "csr"):
        weights = sp.csr_matrix(weights)
    if weights.shape[1] != n_items:
        raise ValueError(f"history weights of {weights.shape[1]} items, similarity of {n_items}")
    return weights.indptr, weights.indices, weights.data


@numba.njit(cache=True)
def _add_products(sums, row, item, weight, in_float32, sim, index):  # pragma: no cover
    """``sums[j] += weight * sim[item, t]`` for each neighbour ``t`` of ``item`` whose
    ``(row, t)`` is candidate ``j``'s (the first of its code): the product in float64 (exact
    for float32 operands), rounded and added in float32 when ``in_float32`` (a float64 sum of
    two float32s rounds to their float32 sum)."""
    indptr, indices, data = sim
    keys, heads, shift, stride, _ = index
    for p in range(indptr[item], indptr[item + 1]):
        j = _find(keys, heads, shift, stride, row, np.int64(indices[p]))
        if j >= 0:
            product = weight * np.float64(data[p])
            if in_float32:
                sums[j] = np.float32(sums[j] + np.float32(product))
            else:
                sums[j] += product


@numba.njit(cache=True)
def _similarity_sums(recent, weights, in_float32, sim, index, out):  # pragma: no cover
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
                _add_products(sums[k], row, item, weight, False, sim, index)
        start = stop
    ptr, item, value = weights
    for row in range(ptr.shape[0] - 1):
        for e in range(ptr[row], ptr[row + 1]):
            _add_products(sums[2], row, item[e], np.float64(value[e]), in_float32, sim, index)
    first = index[4]
    for j in range(first.shape[0]):
        if first[j] >= 0:
            for k in range(3):
                out[k, j] = sums[k, first[j]]
