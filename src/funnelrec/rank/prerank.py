"""The pre-ranker: a cheap model that cuts the merged candidates to the ``keep`` the ranker
scores (coarse ranking, between the merge and the heavy ranker).

Its inputs cost nothing new at request time:

* the recall-evidence columns the funnel already computes for every merged candidate
  (``ev_*``, :mod:`funnelrec.recall.evidence`: per-channel hit / log-rank / score, vector
  cosines, ItemCF similarities, number of channels);
* ``log1p`` of the merged rank;
* the item's ``log1p`` positives in the last day, the last 7 days and all time: a table per
  item computed once when the funnel is fitted (as of its training end), looked up by index.

The model is standardisation then a linear layer or one hidden ReLU layer, evaluated with
NumPy (one matrix product per request); it is fitted by distillation from the ranker
(:mod:`funnelrec.rank.prerank_train`). Its state is arrays plus a JSON header, saved next to
the ranker's.

Example:
    >>> cfg = PreRankConfig(keep=1)
    >>> params = {"mean": np.zeros(4), "scale": np.ones(4),
    ...           "w1": np.array([[0.0], [-1.0], [0.0], [0.0]]), "b1": np.zeros(1)}
    >>> pre = PreRanker(cfg, (), np.zeros((0, 3), np.float32), params)
    >>> frame = pl.DataFrame({"query_id": [0, 0], "item_idx": [3, 4], "merged_rank": [2, 1]})
    >>> kept, rest = pre.cut(frame)
    >>> kept["item_idx"].to_list(), rest["item_idx"].to_list()
    ([4], [3])
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.features.pit.evidence import EVIDENCE_PREFIX, read_evidence, without_evidence
from funnelrec.features.sequence import KeyedEvents
from funnelrec.metrics.rank import query_positions, sorted_runs
from funnelrec.rank.config import PreRankConfig

PRERANK_COLUMN = "prerank_score"
"""The pre-ranker's score, on every candidate it judged (Float32)."""
POPULARITY_WINDOWS_S = (86_400, 7 * 86_400)
"""Item popularity windows besides all time: the shortest and a middle one of the ranker's
own item statistics (``rank.features.windows_s``), which the ranker leans on most."""
N_POPULARITY = len(POPULARITY_WINDOWS_S) + 1
MERGED_EVIDENCE = f"{EVIDENCE_PREFIX}merged_logrank"
"""Left out of the evidence inputs: the pre-ranker computes the same value from
``merged_rank``, which it needs anyway when the evidence is off."""


def item_popularity(
    item: NDArray[np.integer],
    t: NDArray[np.integer],
    log_item: NDArray[np.integer],
    log_t: NDArray[np.integer],
) -> NDArray[np.float32]:
    """``[N, 3]`` ``log1p`` positives of each item in the day, the 7 days and all the time
    strictly before its ``t`` (point in time: a window sample reads nothing from its future).

    Args:
        item / t: ``[N]`` item indices (negative = unknown: zeros) and unix seconds.
        log_item / log_t: ``[E]`` the positive events' items and unix seconds.
    """
    item = np.asarray(item, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    log_t = np.asarray(log_t, dtype=np.int64)
    t0 = min(int(log_t.min()) if log_t.size else 0, int(t.min()) if t.size else 0)
    events = KeyedEvents.build(np.asarray(log_item, dtype=np.int64), log_t - t0)
    rel = t - t0
    query = events.query(item, rel)
    columns = [events.count_since(query, rel - w) for w in POPULARITY_WINDOWS_S]
    columns.append(events.count_before(query))
    return np.log1p(np.column_stack(columns)).astype(np.float32)


def teacher_kept(
    student: NDArray[np.floating],
    teacher: NDArray[np.floating],
    group: NDArray[np.integer],
    keep: int,
    k: int,
) -> tuple[float, int]:
    """Mean share of the teacher's top ``k`` per query that the student's top ``keep`` holds,
    over the queries with more than ``keep`` rows (the others are not cut), and their number
    (``nan, 0`` without such a query). Chance is about ``keep / query size``."""
    code = np.unique(group, return_inverse=True)[1]
    sizes = np.bincount(code)
    top = query_positions(group, teacher) < k
    kept = query_positions(group, student) < keep
    hits = np.bincount(code, weights=(top & kept).astype(np.float64), minlength=sizes.size)
    wanted = np.bincount(code, weights=top.astype(np.float64), minlength=sizes.size)
    cut = (sizes > keep) & (wanted > 0)
    if not cut.any():
        return float("nan"), 0
    return float(np.mean(hits[cut] / wanted[cut])), int(cut.sum())


def build_inputs(
    frame: pl.DataFrame, names: tuple[str, ...], popularity: NDArray[np.float32]
) -> NDArray[np.float64]:
    """``[N, len(names) + 1 + 3]`` raw inputs: the ``names`` evidence columns of ``frame``
    (0 where missing or null), ``log1p(merged_rank)``, then ``popularity`` ``[N, 3]``."""
    k = len(names)
    x = np.empty((frame.height, k + 1 + N_POPULARITY), dtype=np.float64)
    # Read into contiguous rows, then one transposed copy: a third cheaper than writing each
    # column into its strided slot of x (a float column without nulls reads without a copy).
    x[:, :k] = read_evidence(frame, names).T
    x[:, k] = np.log1p(frame.get_column("merged_rank").to_numpy().astype(np.float64))
    x[:, k + 1 :] = popularity
    return x


def forward(
    params: dict[str, NDArray[Any]], x: NDArray[np.float64], *, overwrite: bool = False
) -> NDArray[np.float64]:
    """``[N]`` scores of raw inputs ``x`` ``[N, d]``: standardise, then the linear layer (and,
    with ``w2``, a ReLU and the output layer). ``overwrite``: standardise ``x`` in place (a
    caller's scratch; spares two ``[N, d]`` temporaries, the same numbers)."""
    if overwrite:
        x -= params["mean"]
        x /= params["scale"]
        standardised = x
    else:
        standardised = (x - params["mean"]) / params["scale"]
    hidden = standardised @ params["w1"] + params["b1"]
    if "w2" in params:
        hidden = np.maximum(hidden, 0.0) @ params["w2"] + params["b2"]
    return np.asarray(hidden[:, 0], dtype=np.float64)


class PreRanker:
    """A fitted pre-ranker (module docstring).

    Attributes:
        config: its settings (``keep``).
        names: the ``ev_*`` columns it reads, in input order (a missing one reads 0).
        popularity: ``[n_items, 3]`` the item table as of the training end (items beyond it,
            ingested later, read 0).
        params: ``mean``, ``scale`` (standardisation), ``w1``, ``b1`` and, for the MLP,
            ``w2``, ``b2``.
        stats: how it was fitted (not saved).
    """

    def __init__(
        self,
        config: PreRankConfig,
        names: tuple[str, ...],
        popularity: NDArray[np.float32],
        params: dict[str, NDArray[Any]],
    ) -> None:
        width = len(names) + 1 + N_POPULARITY
        if params["mean"].shape != (width,) or params["w1"].shape[0] != width:
            raise ValueError(
                f"pre-ranker weights for {params['w1'].shape[0]} inputs, expected {width}"
            )
        self.config = config
        self.names = tuple(names)
        self.popularity = np.asarray(popularity, dtype=np.float32).reshape(-1, N_POPULARITY)
        self.params = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        self.stats: dict[str, Any] = {}

    @property
    def n_inputs(self) -> int:
        return len(self.names) + 1 + N_POPULARITY

    def inputs(
        self, frame: pl.DataFrame, popularity: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        """:func:`build_inputs` of ``frame``; ``popularity`` ``[N, 3]`` replaces the table
        lookup (window samples, which read it as of their own time)."""
        if popularity is None:
            popularity = self._lookup(frame.get_column("item_idx").to_numpy())
        return build_inputs(frame, self.names, popularity)

    def _lookup(self, item: NDArray[np.integer]) -> NDArray[np.float32]:
        """``[N, 3]`` the table's rows of ``item`` (zeros beyond it): one gather from the
        table with a zero row appended."""
        table = self._padded_popularity
        rows = table.shape[0] - 1
        if item.size and item.min() >= 0 and item.max() < rows:  # the usual case: all known
            return table[item]
        return table[np.where((item >= 0) & (item < rows), item, rows)]

    @cached_property
    def _padded_popularity(self) -> NDArray[np.float32]:
        return np.concatenate([self.popularity, np.zeros((1, N_POPULARITY), np.float32)])

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """``[N]`` scores of raw inputs ``x``."""
        return forward(self.params, x)

    def score(
        self, frame: pl.DataFrame, popularity: NDArray[np.float32] | None = None
    ) -> NDArray[np.float64]:
        """``[N]`` scores of the candidates in ``frame`` (higher = more worth ranking)."""
        if frame.height == 0:
            return np.zeros(0)
        return forward(self.params, self.inputs(frame, popularity), overwrite=True)

    def select(
        self, frame: pl.DataFrame, rows: NDArray[np.integer] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        """``(kept, rest, score)``: the rows of each query's best ``keep`` candidates by the
        pre-ranker's ``score`` ``[N]`` (ties: merged order), and the other rows, both sorted
        by query, then that score. NumPy only: the caller gathers what it needs.

        With ``rows``, only those rows of ``frame`` are candidates, and positions and scores
        are within them (as for ``frame[rows]``, without gathering the frame: every row is
        scored, which on a served request costs less than the gather)."""
        score = self.score(frame).astype(np.float32)
        group = frame.get_column("query_id").to_numpy()
        merged = frame.get_column("merged_rank").to_numpy()
        if rows is not None:
            score, group, merged = score[rows], group[rows], merged[rows]
        keep = self.config.keep
        if group.size and (group == group[0]).all():  # one query (a served request)
            order = np.lexsort((merged, -score)).astype(np.int64)
            return order[:keep], order[keep:], score
        order = np.lexsort((merged, -score, group))
        codes, starts = sorted_runs(group[order])
        kept = np.arange(order.size) - starts[codes] < keep
        return order[kept].astype(np.int64), order[~kept].astype(np.int64), score

    def cut(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """``(kept, rest)`` of :meth:`select` as frames, both with :data:`PRERANK_COLUMN`;
        the rest without the ``ev_*`` columns, which only the ranker reads."""
        kept, rest, score = self.select(frame)
        first = frame[kept].hstack([pl.Series(PRERANK_COLUMN, score[kept])])
        others = without_evidence(frame)[rest]
        return first, others.hstack([pl.Series(PRERANK_COLUMN, score[rest])])

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, NDArray[Any]]:
        """Arrays only: the weights, the popularity table and a JSON header."""
        meta = {"names": list(self.names), "layers": sorted(self.params)}
        return {
            **{f"param.{k}": v for k, v in self.params.items()},
            "popularity": self.popularity,
            "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        }

    @classmethod
    def from_state(cls, config: PreRankConfig, state: dict[str, NDArray[Any]]) -> PreRanker:
        meta = json.loads(bytes(state["meta"]).decode())
        params = {k: np.asarray(state[f"param.{k}"]) for k in meta["layers"]}
        return cls(config, tuple(meta["names"]), np.asarray(state["popularity"]), params)
