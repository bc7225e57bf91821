import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from funnelrec.recall import evidence, evidence_kernels
from funnelrec.recall.base import ChannelResult, Queries, RetrieverBase
from funnelrec.recall.evidence import add_evidence
from funnelrec.recall.itemcf import ItemCF, ItemCFConfig
from funnelrec.recall.merge import MergeConfig, merge_channels


def _queries(histories: list[list[int]]) -> Queries:
    ptr = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in histories], out=ptr[1:])
    items = np.array([i for h in histories for i in h], dtype=np.int32)
    return Queries(
        query_id=np.arange(len(histories), dtype=np.int64) + 10,
        user_idx=np.arange(len(histories), dtype=np.int32),
        timestamp=np.full(len(histories), 100, dtype=np.int64),
        history_ptr=ptr,
        history_item=items,
        history_time=np.arange(items.shape[0], dtype=np.int64),
    )


def _result(name: str, rows: list[list[int]], scores: list[list[float]]) -> ChannelResult:
    return ChannelResult(name, np.array(rows, dtype=np.int32), np.array(scores, dtype=np.float32))


class _Vectors(RetrieverBase):
    """A channel that only offers item vectors."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors.astype(np.float32)

    def similarity_vectors(self) -> np.ndarray:
        return self.vectors


class _Matrix(_Vectors):
    """An ItemCF-like channel: an item-item matrix and unit history weights."""

    def __init__(self, sim: np.ndarray) -> None:
        super().__init__(np.zeros((sim.shape[0], 1)))
        self.sim = sp.csr_matrix(sim)

    def similarity_matrix(self) -> sp.csr_matrix:
        return self.sim

    def history_weights(self, queries: Queries) -> sp.csr_matrix:
        rows = queries.history_row()
        return sp.csr_matrix(
            (np.ones(rows.shape[0]), (rows, queries.history_item)),
            shape=(len(queries), self.sim.shape[0]),
        )


def _merged(queries: Queries, results: dict[str, ChannelResult]) -> pl.DataFrame:
    config = MergeConfig(k=6, quotas={"a": 3, "b": 3})
    return merge_channels(list(results.values()), queries.query_id, config)


def test_rank_score_and_count_of_every_channel() -> None:
    queries = _queries([[0], [1, 2]])
    results = {
        "a": _result("a", [[3, 4, -1], [5, 3, 4]], [[0.9, 0.5, -np.inf], [0.7, 0.6, 0.2]]),
        "b": _result("b", [[4, 5, 3], [6, -1, -1]], [[9.0, 8.0, 7.0], [3.0, -np.inf, -np.inf]]),
    }
    merged = _merged(queries, results)
    out = add_evidence(merged, results, queries, {})
    assert out.select(merged.columns).equals(merged)
    row = out.filter((pl.col("query_id") == 10) & (pl.col("item_idx") == 4)).row(0, named=True)
    assert (row["ev_a_hit"], row["ev_a_logrank"], row["ev_a_score"]) == pytest.approx(
        (1.0, np.log1p(2), 0.5)
    )
    assert (row["ev_b_hit"], row["ev_b_logrank"], row["ev_b_score"]) == pytest.approx(
        (1.0, np.log1p(1), 9.0)
    )
    assert row["ev_n_channels"] == 2
    missing = out.filter((pl.col("query_id") == 11) & (pl.col("item_idx") == 6)).row(0, named=True)
    assert (missing["ev_a_hit"], missing["ev_a_logrank"], missing["ev_a_score"]) == (0, 0, 0)
    assert missing["ev_n_channels"] == 1
    # The count agrees with the merge's own provenance list.
    assert out["ev_n_channels"].to_list() == out["sources"].list.len().cast(pl.Float32).to_list()


def test_vector_similarity_to_recent_history() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    queries = _queries([[1, 0], []])
    results = {"a": _result("a", [[3, 1], [3, 1]], [[1.0, 0.5], [1.0, 0.5]])}
    merged = merge_channels(list(results.values()), queries.query_id, MergeConfig(k=2))
    out = add_evidence(merged, results, queries, {"a": _Vectors(vectors)})
    warm = out.filter(pl.col("query_id") == 10).sort("item_idx")
    # Item 3 points like item 0 (the last item): cosine 1; item 1 is orthogonal to it.
    assert warm["ev_a_cos_last"].to_list() == pytest.approx([0.0, 1.0])
    # Profile = mean of items 1 and 0 = (0.5, 0.5): cosine 1/sqrt(2) with both.
    assert warm["ev_a_cos_profile"].to_list() == pytest.approx([2**-0.5, 2**-0.5])
    cold = out.filter(pl.col("query_id") == 11)
    assert cold["ev_a_cos_last"].to_list() == [0.0, 0.0]


def test_matrix_similarity_reaches_candidates_the_channel_did_not_return() -> None:
    sim = np.zeros((5, 5))
    sim[0, 3], sim[1, 3], sim[1, 4] = 0.5, 0.25, 0.8
    queries = _queries([[0, 1]])
    results = {"b": _result("b", [[3, 4]], [[2.0, 1.0]])}
    merged = merge_channels(list(results.values()), queries.query_id, MergeConfig(k=2))
    out = add_evidence(merged, results, queries, {"itemcf": _Matrix(sim)}).sort("item_idx")
    assert out["ev_itemcf_sim_last"].to_list() == pytest.approx([0.25, 0.8])  # last item is 1
    assert out["ev_itemcf_sim_recent"].to_list() == pytest.approx([0.375, 0.4])  # mean of 0, 1
    assert out["ev_itemcf_sim_all"].to_list() == pytest.approx([0.75, 0.8])  # weights 1, 1
    assert "ev_itemcf_hit" not in out.columns  # not a result of this batch: no rank evidence


def test_empty_candidates_stay_empty() -> None:
    queries = _queries([[0]])
    results = {"a": _result("a", [[-1]], [[-np.inf]])}
    merged = merge_channels(list(results.values()), queries.query_id, MergeConfig(k=2))
    assert add_evidence(merged, results, queries, {}).height == 0


def test_candidate_index_finds_the_first_candidate_of_each_query_item_pair() -> None:
    """The hash table over (query row, item) answers like a scan, on a table with repeats,
    candidates of no query (-1 row) and without an item (-1), and items it never saw."""
    rng = np.random.default_rng(0)
    n = 3000
    queries = _queries([[0]] * 40)
    query_id = rng.choice(np.append(queries.query_id, 3), n)  # id 3: no query of the batch
    items = rng.integers(-1, 300, n)
    candidates = pl.DataFrame({"query_id": query_id, "item_idx": items.astype(np.int32)})
    index = evidence._Candidates.of(candidates, queries)
    assert index.keys.shape[0] >= 4 * n
    first_of: dict[tuple[int, int], int] = {}
    for j, (row, item) in enumerate(zip(index.rows, index.items, strict=True)):
        if row >= 0 and item >= 0:
            first_of.setdefault((int(row), int(item)), j)
    expected = [first_of.get((int(r), int(i)), -1) for r, i in zip(index.rows, items, strict=True)]
    assert index.first.tolist() == expected
    table = index.table()
    for row, item in [(r, i) for r in range(-1, 41) for i in (-1, 0, 7, 299, 300, 10**6)]:
        assert evidence_kernels.find(*table[:4], row, item) == first_of.get((row, item), -1)


def test_logrank_table_is_numpys_log1p() -> None:
    table = evidence._log1p_positions(500)
    positions = np.arange(501, dtype=np.float64)
    np.testing.assert_array_equal(table, np.log1p(positions).astype(np.float32))
    assert not table.flags.writeable  # shared between requests


class _WeightsOnly:
    """An ItemCF seen through ``history_weights`` alone (no ``history_rows``)."""

    def __init__(self, model: ItemCF) -> None:
        self.model = model

    def similarity_matrix(self) -> sp.csr_matrix:
        return self.model.similarity_matrix()

    def history_weights(self, queries: Queries) -> sp.csr_matrix:
        return self.model.history_weights(queries)


def test_itemcf_history_rows_give_what_its_weight_matrix_gives() -> None:
    """ItemCF's CSR arrays (read without building a scipy matrix) are its matrix's, and the
    similarity evidence is the same read either way."""
    state = {
        "neighbor_idx": np.array([[1, 2], [2, 3], [3, 0], [0, -1]], dtype=np.int32),
        "neighbor_sim": np.array([[0.9, 0.5], [0.8, 0.1], [0.7, 0.2], [0.6, 0.0]], np.float32),
    }
    model = ItemCF.from_state(ItemCFConfig(k=3, neighbors=2, exclude_seen=False), state)
    queries = _queries([[0, 1, 2], [3], []])
    ptr, item, weight = model.history_rows(queries)
    matrix = model.history_weights(queries)
    np.testing.assert_array_equal(ptr, matrix.indptr)
    np.testing.assert_array_equal(item, matrix.indices)
    np.testing.assert_array_equal(weight, matrix.data)
    results = {"itemcf": model.retrieve(queries)}
    merged = merge_channels(list(results.values()), queries.query_id, MergeConfig(k=3))
    direct = add_evidence(merged, results, queries, {"itemcf": model})
    assert direct.equals(add_evidence(merged, results, queries, {"itemcf": _WeightsOnly(model)}))
    assert (direct["ev_itemcf_sim_all"] > 0).any()


def test_history_search_is_shared_by_catalogues_larger_than_every_history_item() -> None:
    history = evidence._History(_queries([[3, 1, 3], [0]]))
    assert history.recent(10) is history.recent(20)  # every item < 4: the same search
    assert history.recent(10).item.tolist() == [3, 1, 0]
    assert history.recent(2).item.tolist() == [1, 0]  # item 3 is outside a 2-item catalogue
