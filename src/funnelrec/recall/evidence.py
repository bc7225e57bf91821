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

from collections.abc import Sequence
from typing import Protocol, TypeGuard, runtime_checkable

import numba
import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray

from funnelrec.data.csr import gather_ranges
from funnelrec.features.pit.evidence import EVIDENCE_PREFIX as PREFIX
from funnelrec.recall.base import ChannelResult, Queries, Retriever
from funnelrec.recall.history import RecentItems, recent_items
from funnelrec.recall.sparse import sorted_by_row

RECENT = 5
"""Items in the "recent" similarity features."""
PROFILE = 50
"""History items averaged into the vector profile (the channels' own default history length)."""
_PRODUCT_CHUNK = 1 << 21
"""(history entry x similarity neighbour) products per step of :func:`_similarity_at`: bounds
its temporaries on offline batches (a served request takes one step)."""


@runtime_checkable
class ItemSimilarity(Protocol):
    """A channel with an item-item similarity matrix (ItemCF)."""

    def similarity_matrix(self) -> sp.csr_matrix: ...

    def history_weights(self, queries: Queries) -> sp.csr_matrix: ...


def add_evidence(
    candidates: pl.DataFrame,
    results: dict[str, ChannelResult],
    queries: Queries,
    channels: dict[str, Retriever],
) -> pl.DataFrame:
    """``candidates`` with the ``ev_*`` columns (module docstring), Float32, rows unchanged.

    Args:
        candidates: merged Candidates (``query_id, item_idx, merged_rank, ...``).
        results: each channel's result for ``queries``, rows aligned with them.
        queries: the batch the candidates answer.
        channels: the fitted channels (for vectors and similarity matrices).
    """
    if candidates.height == 0:
        return candidates
    row_of = np.full(int(queries.query_id.max()) + 1, -1, dtype=np.int64)
    row_of[queries.query_id] = np.arange(len(queries))
    rows = row_of[candidates["query_id"].to_numpy()]
    items = candidates["item_idx"].to_numpy().astype(np.int64)
    columns: dict[str, NDArray[np.float32]] = {}
    position, score = _channel_positions(list(results.values()), rows, items)
    hit = position > 0
    logrank = np.log1p(position).astype(np.float32)
    score = np.where(hit, score, 0.0).astype(np.float32)
    for c, name in enumerate(results):
        columns[f"{PREFIX}{name}_hit"] = hit[c].astype(np.float32)
        columns[f"{PREFIX}{name}_logrank"] = logrank[c]
        columns[f"{PREFIX}{name}_score"] = score[c]
    history = _History(queries)
    for name, channel in channels.items():
        if _has_similarity_matrix(channel):
            columns.update(_matrix_similarities(name, channel, history, rows, items))
        else:
            vectors = channel.similarity_vectors()
            if vectors is not None:
                columns.update(_vector_similarities(name, vectors, history, rows, items))
    columns[f"{PREFIX}n_channels"] = hit.sum(axis=0, dtype=np.float32)
    merged = candidates["merged_rank"].to_numpy().astype(np.float64)
    columns[f"{PREFIX}merged_logrank"] = np.log1p(merged).astype(np.float32)
    # Float32 arrays make Float32 Series: naming the dtype costs ~3 us a column in polars.
    series = [
        pl.Series(name, values.astype(np.float32, copy=False)) for name, values in columns.items()
    ]
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


def _channel_positions(
    results: Sequence[ChannelResult], rows: NDArray[np.int64], items: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``[C, N]`` 1-based position of each (row, item) in each channel's result (0 = absent)
    and the channel's score there (non-finite scores read 0).

    Every channel's entries at once (a search per channel cost ~30 us a channel in fixed
    NumPy calls): each returned (row, item) is looked up among the candidates' distinct
    codes, and each (channel, candidate) keeps its first (best) entry.
    """
    n_channels, n = len(results), items.shape[0]
    item = np.concatenate([r.item_idx.ravel() for r in results] or [np.zeros(0, np.int64)])
    item = item.astype(np.int64, copy=False)
    valid = np.flatnonzero(item >= 0)
    if valid.shape[0] == 0 or not (rows >= 0).any():
        return np.zeros((n_channels, n)), np.zeros((n_channels, n))
    sizes = [r.item_idx.size for r in results]
    channel = np.repeat(np.arange(n_channels, dtype=np.int64), sizes)
    start = np.repeat(np.cumsum(sizes) - sizes, sizes)
    width = np.repeat([max(r.item_idx.shape[1], 1) for r in results], sizes)
    row, col = np.divmod(np.arange(item.shape[0], dtype=np.int64) - start, width)
    # Candidates of no query or no item code as -1, which no entry does.
    n_items = int(max(item.max(), items.max())) + 1
    asked = (rows >= 0) & (items >= 0)
    wanted, slot = _unique_inverse(np.where(asked, rows * n_items + items, -1))
    code = row[valid] * n_items + item[valid]
    at = np.minimum(np.searchsorted(wanted, code), wanted.shape[0] - 1)
    hit = wanted[at] == code
    src = valid[hit]  # entries are in (channel, row, position) order: the first is the best
    first = np.full(n_channels * wanted.shape[0], item.shape[0], dtype=np.int64)
    np.minimum.at(first, channel[src] * wanted.shape[0] + at[hit], src)
    got = first < item.shape[0]
    table = np.zeros((2, first.shape[0]))
    table[0, got] = col[first[got]] + 1
    table[1, got] = np.concatenate([r.score.ravel() for r in results])[first[got]]
    table[1, ~np.isfinite(table[1])] = 0.0
    position, score = table.reshape(2, n_channels, wanted.shape[0])[:, :, slot]
    return position, score


def _unique_inverse(codes: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``np.unique(codes, return_inverse=True)`` without its ~25 us of fixed overhead."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    new = np.ones(codes.shape[0], dtype=bool)
    new[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(codes.shape[0], dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


class _History:
    """The batch's recent distinct history items (the channels' rule,
    :func:`~funnelrec.recall.history.recent_items`), found once per catalogue size for every
    feature that reads them: "last", "recent" and "profile" are its entries of rank < 1, <
    :data:`RECENT` and < :data:`PROFILE`."""

    def __init__(self, queries: Queries) -> None:
        self.queries = queries
        self._recent: dict[int, RecentItems] = {}

    def recent(self, n_items: int) -> RecentItems:
        """Up to ``max(RECENT, PROFILE)`` items per query, items outside ``n_items`` skipped."""
        if n_items not in self._recent:
            usable = np.ones(n_items, dtype=bool)
            self._recent[n_items] = recent_items(self.queries, max(RECENT, PROFILE), usable)
        return self._recent[n_items]


def _vector_similarities(
    name: str,
    vectors: NDArray[np.float32],
    history: _History,
    rows: NDArray[np.int64],
    items: NDArray[np.int64],
) -> dict[str, NDArray[np.float32]]:
    """Cosine of each candidate with the user's last item, recent mean and profile.

    One compiled pass (:func:`_cosines`): the NumPy version (normalise the candidates' and
    history items' vectors, scatter-add the profiles, gather one per candidate) cost ~0.3 ms
    a channel and request in fixed calls, and its gather held ``[3, N, D]`` float64 on an
    offline batch. Only the vectors used are normalised, never the catalogue."""
    recent = history.recent(vectors.shape[0])
    suffixes = (("last", 1), ("recent", RECENT), ("profile", PROFILE))
    cos = _cosines(
        np.ascontiguousarray(vectors),
        recent.row,
        recent.item,
        recent.rank,
        len(history.queries),
        rows,
        items,
        np.array([last for _, last in suffixes], dtype=np.int64),
    )
    return {f"{PREFIX}{name}_cos_{suffix}": cos[k] for k, (suffix, _) in enumerate(suffixes)}


@numba.njit(cache=True)
def _cosines(vectors, row, item, rank, n_rows, rows, items, lasts):  # pragma: no cover - compiled
    """``[K, N]`` float32 cosine of candidate ``(rows[j], items[j])`` with the mean direction of
    its query's recent items of rank < ``lasts[k]`` (0 for unknown items, queries without
    history); the recent items are ``(row, item, rank)`` entries. Float64 throughout."""
    dim, n_lasts = vectors.shape[1], lasts.shape[0]
    # Per query, the sum of the unit vectors of its last ``lasts[k]`` items: the direction of
    # their mean, all a cosine needs.
    sums = np.zeros((n_lasts, n_rows, dim))
    for e in range(row.shape[0]):
        vec = vectors[item[e]]
        scale = 1.0 / max(np.sqrt(np.sum(vec.astype(np.float64) ** 2)), 1e-12)
        for k in range(n_lasts):
            if rank[e] < lasts[k]:
                for d in range(dim):
                    sums[k, row[e], d] += vec[d] * scale
    for k in range(n_lasts):
        for r in range(n_rows):
            scale = 1.0 / max(np.sqrt(np.sum(sums[k, r] ** 2)), 1e-12)
            sums[k, r] *= scale
    out = np.zeros((n_lasts, rows.shape[0]), dtype=np.float32)
    for j in range(rows.shape[0]):
        it, r = items[j], rows[j]
        if it < 0 or it >= vectors.shape[0] or r < 0:
            continue
        vec = vectors[it]
        scale = 1.0 / max(np.sqrt(np.sum(vec.astype(np.float64) ** 2)), 1e-12)
        for k in range(n_lasts):
            dot = 0.0
            for d in range(dim):
                dot += vec[d] * sums[k, r, d]
            out[k, j] = dot * scale
    return out


def _matrix_similarities(
    name: str,
    channel: ItemSimilarity,
    history: _History,
    rows: NDArray[np.int64],
    items: NDArray[np.int64],
) -> dict[str, NDArray[np.float32]]:
    """Item-item similarity of each candidate to the last item, the mean over the recent ones
    (weights 1 / count) and the channel's recency-weighted sum over the whole history."""
    sim = channel.similarity_matrix()
    if not (sp.issparse(sim) and sim.format == "csr"):
        sim = sp.csr_matrix(sim)
    n_items = sim.shape[0]
    known = (items >= 0) & (items < n_items) & (rows >= 0)
    recent = history.recent(n_items)
    near = recent.rank < RECENT
    counts = np.bincount(recent.row[near], minlength=len(history.queries))
    weights = channel.history_weights(history.queries)
    if not (sp.issparse(weights) and weights.format == "csr"):
        weights = sp.csr_matrix(weights)
    if weights.shape[1] != n_items:
        raise ValueError(f"history weights of {weights.shape[1]} items, similarity of {n_items}")
    entries = {
        "last": _entries(recent, recent.rank < 1, np.ones(recent.row.shape[0])),
        "recent": _entries(recent, near, 1.0 / counts[recent.row]),
        "all": (
            np.repeat(np.arange(weights.shape[0], dtype=np.int64), np.diff(weights.indptr)),
            weights.indices.astype(np.int64),
            weights.data,
        ),
    }
    # Each distinct (row, item) candidate once: the sums land in these slots.
    wanted, slot = _unique_inverse(rows[known] * n_items + items[known])
    sums = _similarity_at(list(entries.values()), len(history.queries), sim, wanted)
    out: dict[str, NDArray[np.float32]] = {}
    for suffix, at_wanted in zip(entries, sums, strict=True):
        value = np.zeros(items.shape[0], dtype=np.float32)
        value[known] = at_wanted[slot]
        out[f"{PREFIX}{name}_sim_{suffix}"] = value
    return out


def _entries(
    recent: RecentItems, keep: NDArray[np.bool_], weight: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """The ``keep`` entries of ``recent`` as (row, item, weight), ordered by row then item:
    the order of a CSR matrix built from them, so sums accumulate as its product's would."""
    row, item, weight = recent.row[keep], recent.item[keep], weight[keep]
    order = sorted_by_row(row, item)
    return row[order], item[order], weight[order]


def _similarity_at(
    histories: list[tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.floating]]],
    n_rows: int,
    sim: sp.csr_matrix,
    wanted: NDArray[np.int64],
) -> list[NDArray[np.floating]]:
    """``(H @ sim)`` at the sorted codes ``wanted`` (``row * n_items + item``, row <
    ``n_rows``) for each history matrix H, given by its (row, item, weight) entries in CSR
    order.

    No product is formed (a scipy matrix per history and a product cost ~0.1 ms each on a
    served request): the histories' entries are expanded together (history k's row r as row
    ``k * n_rows + r``), each into its similarity row, and only the products that land on a
    wanted code are summed, in the order scipy's CSR product sums them (H's entries in
    order, then the row's) and in its dtype, so the sums are the same floats. Products are
    taken in float64 and rounded to that dtype: exact for float32 operands, whose product
    fits a double.
    """
    dtypes = [np.result_type(weight.dtype, sim.dtype) for _, _, weight in histories]
    sums = [np.zeros(wanted.shape[0], dtype=dtype) for dtype in dtypes]
    if wanted.shape[0] == 0:
        return sums
    n_items = sim.shape[1]
    group = np.repeat(np.arange(len(histories)), [row.shape[0] for row, _, _ in histories])
    h_row = np.concatenate([row for row, _, _ in histories]) + group * n_rows
    h_item = np.concatenate([item for _, item, _ in histories])
    h_weight = np.concatenate([weight.astype(np.float64) for _, _, weight in histories])
    shift = np.arange(len(histories))[:, None] * n_rows * n_items
    targets = (shift + wanted).ravel()  # still sorted: wanted < n_rows * n_items
    indptr = sim.indptr.astype(np.int64, copy=False)
    lens = indptr[h_item + 1] - indptr[h_item]
    ends = np.cumsum(lens)
    start = 0
    while start < h_item.shape[0]:
        # Entries [start, stop) expand to about _PRODUCT_CHUNK products (at least one entry).
        stop = int(np.searchsorted(ends, ends[start] - lens[start] + _PRODUCT_CHUNK, "right"))
        stop = max(stop, start + 1)
        ptr, gather = gather_ranges(indptr[h_item[start:stop]], lens[start:stop])
        entry = np.repeat(np.arange(start, stop), np.diff(ptr))
        code = h_row[entry] * n_items + sim.indices[gather]
        at = np.minimum(np.searchsorted(targets, code), targets.shape[0] - 1)
        hit = np.flatnonzero(targets[at] == code)
        product = h_weight[entry[hit]] * sim.data[gather[hit]].astype(np.float64)
        for k, dtype in enumerate(dtypes):
            mine = group[entry[hit]] == k
            np.add.at(sums[k], at[hit[mine]] - k * wanted.shape[0], product[mine].astype(dtype))
        start = stop
    return sums
