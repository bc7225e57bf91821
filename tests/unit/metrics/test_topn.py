"""Hand-computed checks of every metric."""

import math

import numpy as np
import pytest

from funnelrec.metrics.topn import (
    catalogue_coverage,
    category_diversity,
    hit_matrix,
    hit_rate_at_k,
    intra_list_diversity,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    per_query_metrics,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

# Two queries. Query 0 truth {2, 7}; query 1 truth {5}.
RECS = np.array([[2, 4, 7, -1], [1, 3, 9, 5]])
TRUTH_PTR = np.array([0, 2, 3])
TRUTH_IDX = np.array([2, 7, 5])


@pytest.fixture
def hits() -> np.ndarray:
    return hit_matrix(RECS, TRUTH_PTR, TRUTH_IDX)


def test_hit_matrix(hits: np.ndarray) -> None:
    assert hits.tolist() == [[True, False, True, False], [False, False, False, True]]


def test_padding_never_hits() -> None:
    assert not hit_matrix(np.array([[-1, -1]]), np.array([0, 1]), np.array([0])).any()


@pytest.mark.parametrize("seed", range(5))
def test_hit_matrix_is_membership_of_each_rows_truth(seed: int) -> None:
    """Against the definition (each row's truth as a set), on random rows with padding,
    items beyond every truth item, empty truths and truth items beyond every recommendation."""
    rng = np.random.default_rng(seed)
    n_rows, width, n_items = 50, 12, 40
    recs = np.stack([rng.permutation(n_items)[:width] for _ in range(n_rows)])
    recs[rng.random(recs.shape) < 0.2] = -1
    lens = rng.integers(0, 6, n_rows)
    truth = [rng.choice(n_items + 10, size, replace=False) for size in lens]
    ptr = np.concatenate([[0], np.cumsum(lens)])
    got = hit_matrix(recs, ptr, np.concatenate(truth))
    sets = [set(t.tolist()) for t in truth]
    expected = [[r >= 0 and r in t for r in row] for row, t in zip(recs, sets, strict=True)]
    assert got.tolist() == expected
    assert not hit_matrix(recs, np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0)).any()


def test_recall(hits: np.ndarray) -> None:
    # q0: top1 has 1 of 2; q1: none -> (0.5 + 0) / 2
    assert recall_at_k(hits, TRUTH_PTR, 1) == pytest.approx(0.25)
    # top3: q0 2/2, q1 0/1
    assert recall_at_k(hits, TRUTH_PTR, 3) == pytest.approx(0.5)
    assert recall_at_k(hits, TRUTH_PTR, 4) == pytest.approx(1.0)


def test_hit_rate_and_precision(hits: np.ndarray) -> None:
    assert hit_rate_at_k(hits, 3) == pytest.approx(0.5)
    assert hit_rate_at_k(hits, 4) == pytest.approx(1.0)
    # top2: q0 1/2, q1 0/2
    assert precision_at_k(hits, 2) == pytest.approx(0.25)


def test_ndcg(hits: np.ndarray) -> None:
    # q0 @3: hits at ranks 1 and 3 -> (1 + 1/log2(4)) / (1 + 1/log2(3))
    q0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(hits, TRUTH_PTR, 3) == pytest.approx(q0 / 2)
    # q1 @4: hit at rank 4 -> (1/log2(5)) / 1
    assert ndcg_at_k(hits, TRUTH_PTR, 4) == pytest.approx((q0 + 1 / math.log2(5)) / 2)


def test_mrr(hits: np.ndarray) -> None:
    assert mrr_at_k(hits, 3) == pytest.approx((1.0 + 0.0) / 2)
    assert mrr_at_k(hits, 4) == pytest.approx((1.0 + 0.25) / 2)


def test_coverage_and_novelty() -> None:
    assert catalogue_coverage(RECS, 20, 2) == pytest.approx(4 / 20)
    assert catalogue_coverage(np.array([[3, 3, -1], [3, 0, 1]]), 8, 3) == pytest.approx(3 / 8)
    assert catalogue_coverage(np.full((2, 2), -1), 8, 2) == 0.0
    assert catalogue_coverage(RECS, 0, 2) == 0.0
    pop = np.zeros(10)
    pop[[2, 4]] = [0.5, 0.25]
    # items 2 (p .5 -> 1 bit) and 4 (p .25 -> 2 bits); unseen items floored at .25
    assert novelty(np.array([[2, 4], [1, -1]]), pop, 2) == pytest.approx((1 + 2 + 2) / 3)


def test_empty_truth_rejected(hits: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least one relevant"):
        recall_at_k(hits, np.array([0, 0, 3]), 2)


def test_ranking_metrics_keys() -> None:
    out = ranking_metrics(RECS, TRUTH_PTR, TRUTH_IDX, (1, 4))
    assert set(out) == {
        f"{m}@{k}" for m in ("recall", "hit", "ndcg", "mrr", "precision") for k in (1, 4)
    }


def _brute_ild(recs: np.ndarray, emb: np.ndarray, k: int) -> float:
    values = []
    for row in recs[:, :k]:
        items = [i for i in row if i >= 0]
        dist = []
        for a in items:
            for b in items:
                if a == b:
                    continue
                va = emb[a] if a < len(emb) else np.zeros(emb.shape[1])
                vb = emb[b] if b < len(emb) else np.zeros(emb.shape[1])
                na, nb = np.linalg.norm(va), np.linalg.norm(vb)
                cos = va @ vb / (na * nb) if na > 0 and nb > 0 else 0.0
                dist.append(1.0 - cos)
        if dist:
            values.append(np.mean(dist))
    return float(np.mean(values))


def test_intra_list_diversity_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(30, 8))
    emb[3] = 0.0  # an item we know nothing about
    recs = rng.choice(32, size=(7, 6), replace=True)
    recs = np.array([np.unique(r)[:5].tolist() + [-1] * (6 - len(np.unique(r)[:5])) for r in recs])
    recs[0, 2:] = -1
    got = intra_list_diversity(recs, emb, 6)
    assert got == pytest.approx(_brute_ild(recs, emb, 6), abs=1e-5)


def test_intra_list_diversity_identical_items_is_zero() -> None:
    emb = np.ones((4, 3))
    assert intra_list_diversity(np.array([[0, 1, 2, 3]]), emb, 4) == pytest.approx(0.0, abs=1e-6)


def test_category_diversity() -> None:
    cats = np.array([0, 0, 1, 2, -1])
    ild, cover = category_diversity(np.array([[0, 1, -1], [2, 3, 4]]), cats, 3)
    # row 0: both items category 0 -> ILD 0, 1 distinct of min(2, 3) -> 0.5
    # row 1: categories 1, 2, unknown -> ILD 1, 3 distinct of 3 -> 1.0
    assert ild == pytest.approx(0.5)
    assert cover == pytest.approx(0.75)


def test_per_query_metrics_are_the_rows_behind_the_means() -> None:
    rows = per_query_metrics(RECS, TRUTH_PTR, TRUTH_IDX, (1, 4))
    assert set(rows) == set(ranking_metrics(RECS, TRUTH_PTR, TRUTH_IDX, (1, 4)))
    # q0 truth {2, 7}: top1 holds 2; q1 truth {5}: found at rank 4
    assert rows["recall@1"].tolist() == [0.5, 0.0]
    assert rows["hit@4"].tolist() == [1.0, 1.0]
    assert rows["mrr@4"].tolist() == [1.0, 0.25]
    assert rows["precision@4"].tolist() == [0.5, 0.25]
    assert rows["ndcg@4"][1] == pytest.approx(1 / math.log2(5))
    means = ranking_metrics(RECS, TRUTH_PTR, TRUTH_IDX, (1, 4))
    for name, values in rows.items():
        assert values.shape == (2,)
        assert means[name] == float(np.mean(values))


def _brute_category_diversity(recs: np.ndarray, cats: np.ndarray, k: int) -> tuple[float, float]:
    """Category ILD / coverage by looping over every pair (the definition)."""
    n_categories = len(set(int(c) for c in cats if c >= 0))
    ilds, covers = [], []
    for row in recs[:, :k]:
        items = [int(i) for i in row if i >= 0]
        labels = [int(cats[i]) if i < len(cats) and cats[i] >= 0 else ("unknown", i) for i in items]
        pairs = [(a, b) for a in range(len(items)) for b in range(len(items)) if a != b]
        if pairs:
            ilds.append(np.mean([labels[a] != labels[b] for a, b in pairs]))
        if items:
            covers.append(len(set(labels)) / min(len(items), max(n_categories, 1)))
    return float(np.mean(ilds)), float(np.mean(covers))


def test_category_diversity_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    cats = rng.integers(-1, 4, size=25)  # some unknown (-1); items 25..29 are past the end
    recs = np.array([rng.permutation(30)[:8] for _ in range(40)])
    recs[::3, 5:] = -1
    recs[7, 1:] = -1  # a one-item list: no pairs, still covered
    ild, cover = category_diversity(recs, cats, 8)
    want_ild, want_cover = _brute_category_diversity(recs, cats, 8)
    assert ild == pytest.approx(want_ild, abs=1e-12)
    assert cover == pytest.approx(want_cover, abs=1e-12)
