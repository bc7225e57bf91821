"""LightGBM with objective="lambdarank": learns a planted order within queries whose rows are
interleaved, outputs monotone scores in [0, 1], round-trips through state, and fusion runs on
its scores."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.special import expit

from funnelrec.features.behaviours import DenseSequences
from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.metrics.rank import gauc, grouped_ndcg
from funnelrec.rank.fusion import FusionTarget, fuse, search_fusion
from funnelrec.rank.gbdt import LightGBMRanker, _design_matrix
from funnelrec.rank.gbdt_config import LightGBMConfig

SPEC = FeatureSpec(
    sparse_names=("item", "category"),
    sparse_cardinalities=(501, 6),
    n_dense=3,
    seq_len=0,
    item_field=0,
    category_field=1,
    tasks=("click", "order", "like"),
)
RANK = LightGBMConfig(
    objective="lambdarank",
    n_estimators=60,
    learning_rate=0.1,
    num_leaves=15,
    min_child_samples=10,
    early_stopping_rounds=10,
    num_threads=1,
)
QUERY = 20  # candidates per query


def make_features(n_queries: int, seed: int, *, interleave: bool = True) -> RankFeatures:
    """Click relevance rises with dense[0] (plus a per-query offset the order ignores), order
    with dense[1]; dense[2] is noise. 'like' is constant within each query: no pair to order.
    ``interleave`` spreads each query's rows over the table (first rows of every query, then
    second rows, ...), keeping their order within the query."""
    rng = np.random.default_rng(seed)
    n = n_queries * QUERY
    group = np.repeat(np.arange(n_queries, dtype=np.int64) * 7 + 3, QUERY)  # sparse ids
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    offset = np.repeat(rng.normal(size=n_queries), QUERY)
    click = rng.random(n) < expit(2.0 * dense[:, 0] - 2.0 + offset)
    order = rng.random(n) < expit(2.5 * dense[:, 1] - 3.0)
    like = np.repeat(rng.random(n_queries) < 0.5, QUERY)
    sparse = np.column_stack([rng.integers(1, 501, n), rng.integers(1, 6, n)]).astype(np.int64)
    rows = np.argsort(np.tile(np.arange(QUERY), n_queries), kind="stable") if interleave else None
    features = RankFeatures(
        spec=SPEC,
        sparse=sparse,
        dense=dense,
        sequences=DenseSequences(
            np.zeros((n, 0), np.int64), np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
        ),
        labels={
            "click": click.astype(np.float32),
            "order": order.astype(np.float32),
            "like": like.astype(np.float32),
        },
        group=group,
        user_idx=group,
    )
    return features if rows is None else features.take(rows)


@pytest.fixture(scope="module")
def data() -> tuple[RankFeatures, RankFeatures, RankFeatures]:
    return make_features(150, 0), make_features(50, 1), make_features(100, 2)


@pytest.fixture(scope="module")
def fitted(data: tuple[RankFeatures, RankFeatures, RankFeatures]) -> LightGBMRanker:
    return LightGBMRanker(RANK).fit(data[0], data[1])


def test_learns_the_planted_order(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    test = data[2]
    scores = fitted.predict(test)
    rng = np.random.default_rng(0)
    for task, margin in (("click", 0.25), ("order", 0.25)):
        y = test.labels[task]
        ndcg = grouped_ndcg(y, scores[task], test.group, 10)
        random = np.mean([grouped_ndcg(y, rng.random(len(test)), test.group, 10) for _ in range(5)])
        assert ndcg > random + margin, (task, ndcg, random)
        assert gauc(y, scores[task], test.group).value > 0.7


def test_outputs_are_sigmoid_of_the_ranking_score(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    test = data[2]
    scores = fitted.predict(test)
    raw = fitted._boosters["click"].predict(_design_matrix(test, fitted._fitted()))
    assert np.all((scores["click"] >= 0) & (scores["click"] <= 1))
    np.testing.assert_allclose(scores["click"], expit(raw), rtol=1e-12)
    assert raw.min() < 0 < raw.max()  # raw scores, not probabilities
    text = fitted.state()["booster.click"].tobytes().decode()
    assert "objective=lambdarank" in text


def test_query_without_pairs_gets_no_booster(
    fitted: LightGBMRanker,
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 'like' has both classes overall, but every query is all-0 or all-1.
    assert "like" not in fitted._boosters
    with caplog.at_level(logging.WARNING, logger="funnelrec.rank.gbdt"):
        model = LightGBMRanker(RANK.model_copy(update={"n_estimators": 5})).fit(data[0])
    assert any(
        "'like'" in r.getMessage() and "nothing to order" in r.getMessage() for r in caplog.records
    )
    like = model.predict(data[2])["like"]
    assert np.all(like == like[0]) and 0 < like[0] < 1


def test_interleaved_rows_train_like_contiguous_ones(
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
) -> None:
    """LightGBM reads queries as consecutive runs: the ranker must group them itself."""
    cfg = RANK.model_copy(update={"n_estimators": 15})
    contiguous = make_features(150, 0, interleave=False)
    a = LightGBMRanker(cfg).fit(data[0]).predict(data[2])
    b = LightGBMRanker(cfg).fit(contiguous).predict(data[2])
    np.testing.assert_array_equal(a["click"], b["click"])


def test_early_stopping_reads_validation_ndcg(
    data: tuple[RankFeatures, RankFeatures, RankFeatures], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = RANK.model_copy(
        update={"n_estimators": 300, "learning_rate": 0.5, "early_stopping_rounds": 3}
    )
    with caplog.at_level(logging.INFO, logger="funnelrec.rank.gbdt"):
        model = LightGBMRanker(cfg).fit(data[0], data[1])
    assert any("valid ndcg@10" in r.getMessage() for r in caplog.records)
    assert model.state()["booster.click"].tobytes().decode().count("Tree=") < 300


def test_state_round_trip_is_identical(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    loaded = LightGBMRanker.from_state(RANK, fitted.state())
    a, b = fitted.predict(data[2]), loaded.predict(data[2])
    for task in a:
        np.testing.assert_array_equal(a[task], b[task])
    with pytest.raises(ValueError, match="objective 'lambdarank'"):
        LightGBMRanker.from_state(LightGBMConfig(), fitted.state())


def test_fusion_search_runs_on_ranking_scores(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    valid = data[1]
    scores = fitted.predict(valid)
    labels = {t: valid.labels[t] for t in ("click", "order")}
    target = FusionTarget(value_weights={"click": 1.0, "order": 10.0})
    result = search_fusion(
        {t: scores[t] for t in labels},
        labels,
        valid.group,
        target,
        n_trials=8,
        rng=np.random.default_rng(0),
    )
    assert result.best_value >= result.baseline_value > 0
    fused = fuse({t: scores[t] for t in labels}, result.best)
    assert fused.shape == (len(valid),) and np.all(np.isfinite(fused))
