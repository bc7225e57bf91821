import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from funnelrec.errors import DataError
from funnelrec.rerank import ItemSide, ListReranker, RerankConfig, RulesConfig, apply_rules
from funnelrec.rerank.rules import eligible


def _window_ok(cats: list[int], m: int, w: int) -> bool:
    """No known category more than m times in any w consecutive positions."""
    for start in range(max(1, len(cats) - w + 1)):
        window = [c for c in cats[start : start + w] if c >= 0]
        if any(window.count(c) > m for c in set(window)):
            return False
    return True


@st.composite
def _case(draw: st.DrawFn) -> dict:
    n = draw(st.integers(0, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    item = rng.integers(0, max(1, n), n)  # repeats are common
    as_mask = draw(st.booleans())
    consumed_ids = {int(i) for i in rng.integers(0, max(1, n), draw(st.integers(0, 5)))}
    return {
        "order": rng.permutation(n)[: draw(st.integers(0, n))],
        "item": item,
        "category": rng.integers(-1, 3, n),
        "fresh": rng.random(n) < 0.3,
        "consumed": np.isin(item, list(consumed_ids)) if as_mask else consumed_ids,
        "consumed_ids": consumed_ids,
        "k": draw(st.integers(0, 35)),
        "config": RulesConfig(
            max_per_category=draw(st.none() | st.integers(1, 3)),
            category_window=draw(st.integers(1, 6)),
            freshness_boost=draw(st.sampled_from([0.0, 1.0, 2.4, 5.0])),
        ),
    }


@settings(max_examples=300, deadline=None)
@given(_case())
def test_rules_hold_on_every_output(case: dict) -> None:
    config: RulesConfig = case["config"]
    out = apply_rules(
        case["order"],
        case["item"],
        case["category"],
        case["fresh"],
        case["consumed"],
        case["k"],
        config,
    )
    items = case["item"][out].tolist()
    cats = case["category"][out].tolist()
    assert out.dtype == np.int64
    assert len(out) <= case["k"]
    assert set(out.tolist()) <= set(case["order"].tolist())
    assert not set(items) & case["consumed_ids"]
    assert len(items) == len(set(items))
    m, w = config.max_per_category, config.category_window
    if m is not None:
        assert _window_ok(cats, m, w)
        # The list only ends early when no eligible item left could be appended.
        if len(out) < case["k"]:
            # Dedupe keeps the first occurrence even when that one is then left out.
            first: dict[int, int] = {}
            for p in case["order"].tolist():
                if int(case["item"][p]) not in case["consumed_ids"]:
                    first.setdefault(int(case["item"][p]), p)
            left = [p for p in first.values() if p not in out]
            assert all(not _window_ok([*cats, case["category"][p]], m, w) for p in left)
    else:
        eligible_count = len({case["item"][p] for p in case["order"]} - case["consumed_ids"])
        assert len(out) == min(case["k"], eligible_count)


def _rules(**kw: object) -> RulesConfig:
    return RulesConfig.model_validate(kw)


def test_filters_and_dedupe_keep_the_first() -> None:
    item = np.array([10, 11, 10, 12, 13])
    out = apply_rules(
        np.array([2, 0, 1, 3, 4]), item, np.full(5, -1), np.zeros(5, bool), {12}, 10, _rules()
    )
    assert out.tolist() == [2, 1, 4]
    off = _rules(dedupe=False, filter_consumed=False)
    out = apply_rules(np.arange(5), item, np.full(5, -1), np.zeros(5, bool), {12}, 10, off)
    assert out.tolist() == [0, 1, 2, 3, 4]


def test_freshness_moves_fresh_items_up_by_round_boost() -> None:
    fresh = np.array([False, False, False, True, False, True])
    out = apply_rules(
        np.arange(6), np.arange(6), np.full(6, -1), fresh, None, 6, _rules(freshness_boost=1.6)
    )
    # b = 2: item 3 lands just above old index 1 (passing 1 and 2); item 5 lands just above old
    # index 3, which item 3 left, so it passes only item 4: fresh items never pass each other.
    assert out.tolist() == [0, 3, 1, 2, 5, 4]
    out = apply_rules(
        np.arange(3),
        np.arange(3),
        np.full(3, -1),
        np.array([0, 0, 1], bool),
        None,
        3,
        _rules(freshness_boost=9),
    )
    assert out.tolist() == [2, 0, 1]


def test_category_walk_defers_and_reconsiders() -> None:
    cat = np.array([0, 0, 0, 1, -1, 1, 0])
    out = apply_rules(
        np.arange(7),
        np.arange(7),
        cat,
        np.zeros(7, bool),
        None,
        7,
        _rules(max_per_category=1, category_window=2),
    )
    # No two neighbours share a category: 1 and 2 wait while 3 is taken, then come back in
    # list order as soon as they fit; the unknown category of 4 separates 1 from 2.
    assert out.tolist() == [0, 3, 1, 4, 2, 5, 6]


def test_list_ends_short_rather_than_breaking_a_rule() -> None:
    out = apply_rules(
        np.arange(4),
        np.arange(4),
        np.zeros(4, int),
        np.zeros(4, bool),
        None,
        4,
        _rules(max_per_category=2, category_window=10),
    )
    assert out.tolist() == [0, 1]


def test_apply_rules_bad_inputs() -> None:
    ok = (np.arange(3), np.arange(3), np.zeros(3, int), np.zeros(3, bool), None, 3, _rules())
    with pytest.raises(ValueError, match="must all be"):
        apply_rules(ok[0], ok[1], np.zeros(2, int), *ok[3:])
    with pytest.raises(ValueError, match="positions in"):
        apply_rules(np.array([0, 3]), *ok[1:])
    with pytest.raises(ValueError, match="k must be"):
        apply_rules(*ok[:5], -1, ok[6])
    with pytest.raises(ValueError, match="consumed mask"):
        apply_rules(*ok[:4], np.zeros(2, bool), *ok[5:])


# ---- ListReranker: diversification + rules on the stage's table ----


def _scored() -> pl.DataFrame:
    # Two queries, rows shuffled; query 7 has a null score (a held item) at rank 2.
    rows = [
        (7, 0, 0.9, 1),
        (5, 3, 0.8, 1),
        (7, 1, None, 2),
        (5, 4, 0.7, 2),
        (7, 2, 0.5, 3),
        (5, 5, 0.6, 3),
        (7, 3, 0.4, 4),
        (5, 0, 0.5, 4),
        (7, 99, 0.3, 5),
        (5, 1, 0.1, 5),
        (7, 4, 0.2, 6),
    ]
    return pl.DataFrame(
        rows,
        schema={"query_id": pl.Int64, "item_idx": pl.Int32, "score": pl.Float32, "rank": pl.Int32},
        orient="row",
    ).with_columns(pl.lit("x").alias("source"))


ITEMS = ItemSide(
    embeddings=np.array(
        [[1, 0, 0], [1, 0.05, 0], [0, 1, 0], [0, 0, 1], [0.7, 0.7, 0], [0, 0.1, 1]],
        dtype=np.float32,
    ),
    category=np.array([0, 0, 1, 2, 1, 2], dtype=np.int32),
    created_at=np.array([0, 0, 0, 0, 900, 0], dtype=np.int64),
)


@pytest.mark.parametrize("method", ["rules", "mmr", "dpp"])
def test_list_reranker_contract(method: str) -> None:
    scored = _scored()
    config = RerankConfig(method=method, pool=5, slack=1)
    out = ListReranker(config).rerank(scored, 3, ITEMS)
    assert out.columns == [*scored.columns, "pre_rerank_rank"]
    assert out.schema["rank"] == pl.Int32
    assert out["query_id"].to_list() == [5, 5, 5, 7, 7, 7]
    for q, part in out.group_by("query_id", maintain_order=True):
        assert part["rank"].to_list() == [1, 2, 3]
        pool = scored.filter((pl.col("query_id") == q[0]) & (pl.col("rank") <= 5))
        joined = part.join(pool, on=["query_id", "item_idx"], how="left")
        assert joined["rank_right"].null_count() == 0  # every item comes from the pool
        assert joined["pre_rerank_rank"].to_list() == joined["rank_right"].to_list()


def test_list_reranker_diversifies_and_holds_null_scores_in_place() -> None:
    # lam=1: relevance order; the null score at rank 2 counts as 0.9 and ties keep rank order.
    out = ListReranker(RerankConfig(method="mmr", lam=1.0)).rerank(_scored(), 6, ITEMS)
    q7 = out.filter(pl.col("query_id") == 7)
    assert q7["item_idx"].to_list() == [0, 1, 2, 3, 99, 4]
    # With diversity, item 1 (a near copy of item 0) is pushed down.
    out = ListReranker(RerankConfig(method="dpp", theta=0.5)).rerank(_scored(), 6, ITEMS)
    q7 = out.filter(pl.col("query_id") == 7)["item_idx"].to_list()
    assert q7[0] == 0 and q7.index(1) > q7.index(2)


def test_list_reranker_applies_rules() -> None:
    rules = RulesConfig(max_per_category=1, category_window=2, freshness_boost=10, fresh_age_s=500)
    config = RerankConfig(method="mmr", lam=0.8, rules=rules)
    out = ListReranker(config).rerank(_scored(), 5, ITEMS, consumed={7: {2}}, now=np.array([1000]))
    for (q,), part in out.group_by("query_id", maintain_order=True):
        items = part["item_idx"].to_list()
        cats = [int(ITEMS.category[i]) if i < 6 else -1 for i in items]
        assert _window_ok(cats, 1, 2)
        if q == 7:
            assert 2 not in items
            assert items[0] == 4  # fresh (created 100 s before now), boosted past the top


def test_list_reranker_errors_and_empty_input() -> None:
    reranker = ListReranker(RerankConfig())
    with pytest.raises(DataError, match="score"):
        reranker.rerank(_scored().drop("score"), 3, ITEMS)
    with pytest.raises(ValueError, match="neither"):
        reranker.rerank(_scored(), 3, ItemSide())
    boosted = RerankConfig(rules=RulesConfig(freshness_boost=1))
    with pytest.raises(ValueError, match="needs ItemSide.created_at and `now`"):
        ListReranker(boosted).rerank(_scored(), 3, ITEMS)
    with pytest.raises(ValueError, match="one per query"):
        ListReranker(boosted).rerank(_scored(), 3, ITEMS, now=np.array([1, 2, 3]))
    empty = reranker.rerank(_scored().head(0), 3, ITEMS)
    assert empty.height == 0 and "pre_rerank_rank" in empty.columns
    rules_only = ListReranker(RerankConfig(method="rules")).rerank(_scored(), 2, ItemSide())
    assert rules_only["item_idx"].to_list() == [3, 4, 0, 1]


@pytest.mark.parametrize("seed", range(20))
def test_eligible_equals_isin_and_unique(seed: int) -> None:
    rng = np.random.default_rng(seed)
    item = rng.integers(0, 30, 60)
    order = rng.permutation(60)[: rng.integers(0, 61)]
    consumed = set(rng.integers(0, 30, rng.integers(0, 10)).tolist())
    for dedupe in (True, False):
        config = RulesConfig(dedupe=dedupe)
        seq = order[~np.isin(item[order], list(consumed))] if consumed else order
        if dedupe and seq.size:
            seq = seq[np.sort(np.unique(item[seq], return_index=True)[1])]
        assert eligible(order, item, consumed, config).tolist() == seq.tolist()
