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
from dataclasses import dataclass
from typing import Protocol, TypeGuard, runtime_checkable

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.data.frames import float32_series
from funnelrec.features.pit.evidence import EVIDENCE_PREFIX as PREFIX
from funnelrec.recall import evidence_kernels as kernels
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.evidence_kernels import PROFILE, RECENT
from funnelrec.recall.history import RecentItems, recent_items


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
    series = [float32_series(name, values) for name, values in columns.items()]
    if any(name in columns for name in candidates.columns):
        return candidates.with_columns(series)  # replaced in place, as with_columns does
    # hstack: with_columns over the ~35 new columns cost ~0.3 ms more on a served request.
    return candidates.hstack(series)


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
    the rare repeats (:func:`kernels.copy_to_repeats`).

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
            *kernels.code_table(
                queries.query_id,
                candidates.get_column("query_id").to_numpy(),
                candidates.get_column("item_idx").to_numpy(),
            )
        )

    def table(self) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int, NDArray[np.int64]]:
        """``(keys, heads, shift, stride, first)``: the table as the kernels take it."""
        return self.keys, self.heads, self.shift, self.stride, self.first


def _rank_evidence(
    results: dict[str, ChannelResult], index: _Candidates
) -> tuple[dict[str, NDArray[np.float32]], NDArray[np.float32]]:
    """The ``hit``, ``logrank`` and ``score`` columns of every channel and the number of
    channels that returned each candidate."""
    n_channels = len(results)
    out = np.zeros((3 * n_channels + 1, index.rows.shape[0]), dtype=np.float32)
    if n_channels:
        shapes = np.array([r.item_idx.shape for r in results.values()], dtype=np.int64)
        kernels.rank_columns(
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

    One compiled pass (:func:`kernels.cosines`): the NumPy version (normalise the candidates' and
    history items' vectors, scatter-add the profiles, gather one per candidate) cost ~0.3 ms
    a channel and request in fixed calls, and its gather held ``[3, N, D]`` float64 on an
    offline batch. Only the vectors used are normalised, never the catalogue."""
    recent = history.recent(vectors.shape[0])
    out = np.zeros((3, index.rows.shape[0]), dtype=np.float32)
    vectors = np.ascontiguousarray(vectors)
    kernels.touch_rows(vectors, index.items)
    kernels.cosines(
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


# Reassociated (SIMD) sums: ~2.5x faster than the in-order ones this pass had, and the same
# float32 results but with odds ~1e-8 per value: a float64 sum reordered moves by ~1e-16
# relative, and only a value that close to a float32 rounding boundary rounds otherwise.
def _matrix_similarities(
    name: str, channel: ItemSimilarity, history: _History, index: _Candidates
) -> dict[str, NDArray[np.float32]]:
    """Item-item similarity of each candidate to the last item, the mean over the recent ones
    (weights 1 / count) and the channel's recency-weighted sum over the whole history.

    No product matrix is formed (a scipy matrix per history and a product cost ~0.1 ms
    each on a served request): :func:`kernels.similarity_sums` expands each history entry into its
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
    kernels.similarity_sums(
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
