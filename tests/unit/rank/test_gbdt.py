"""LightGBM per-task baseline: learns a planted signal, round-trips through state, edge cases."""

import logging

import numpy as np
import pytest
from pydantic import ValidationError

from funnelrec.features.behaviours import DenseSequences
from funnelrec.features.spec import FeatureSpec, RankFeatures
from funnelrec.metrics.rank import auc
from funnelrec.rank.gbdt import SEQ_AGGREGATES, LightGBMRanker
from funnelrec.rank.gbdt_config import LightGBMConfig

SPEC = FeatureSpec(
    sparse_names=("user", "item", "category"),
    sparse_cardinalities=(5001, 2001, 11),
    n_dense=2,
    seq_len=6,
    item_field=1,
    category_field=2,
    tasks=("click", "order", "like"),
    dense_names=("price", "ctr"),
)

FAST = LightGBMConfig(
    n_estimators=60, learning_rate=0.1, num_leaves=15, early_stopping_rounds=10, num_threads=1
)


def make_features(n: int, seed: int) -> RankFeatures:
    """Click depends on category, dense 'ctr' and same-category history; order on 'price'."""
    rng = np.random.default_rng(seed)
    user = rng.integers(1, 5001, n)
    item = rng.integers(1, 2001, n)
    cat = rng.integers(1, 11, n)
    dense = rng.normal(size=(n, 2)).astype(np.float32)
    hist_len = rng.integers(0, 7, n)
    valid = np.arange(6)[None, :] < hist_len[:, None]
    seq_item = np.where(valid, rng.integers(1, 2001, (n, 6)), 0)
    seq_cat = np.where(valid, rng.integers(1, 11, (n, 6)), 0)
    seq_gap = np.where(valid, rng.random((n, 6)) * 10, 0).astype(np.float32)
    same_cat = ((seq_cat == cat[:, None]) & valid).sum(axis=1)
    logit_click = 1.5 * dense[:, 1] + 1.0 * (cat <= 3) + 1.0 * same_cat - 1.0
    logit_order = 2.0 * dense[:, 0] - 2.5
    click = (rng.random(n) < 1 / (1 + np.exp(-logit_click))).astype(np.float32)
    order = (rng.random(n) < 1 / (1 + np.exp(-logit_order))).astype(np.float32)
    return RankFeatures(
        spec=SPEC,
        sparse=np.column_stack([user, item, cat]).astype(np.int64),
        dense=dense,
        sequences=DenseSequences(seq_item.astype(np.int64), seq_cat.astype(np.int64), seq_gap),
        labels={"click": click, "order": order, "like": np.zeros(n, dtype=np.float32)},
        group=np.arange(n, dtype=np.int64) // 20,
        user_idx=user,
    )


@pytest.fixture(scope="module")
def data() -> tuple[RankFeatures, RankFeatures, RankFeatures]:
    return make_features(3000, 0), make_features(1000, 1), make_features(1000, 2)


@pytest.fixture(scope="module")
def fitted(data: tuple[RankFeatures, RankFeatures, RankFeatures]) -> LightGBMRanker:
    train, valid, _ = data
    return LightGBMRanker(FAST).fit(train, valid)


def test_learns_planted_signal(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    test = data[2]
    probs = fitted.predict(test)
    assert set(probs) == {"click", "order", "like"}
    assert auc(test.labels["click"], probs["click"]) > 0.7
    assert auc(test.labels["order"], probs["order"]) > 0.7
    for p in probs.values():
        assert p.shape == (len(test),)
        assert p.dtype == np.float64
        assert np.all((p >= 0) & (p <= 1))


def test_feature_layout_drops_high_cardinality_ids(fitted: LightGBMRanker) -> None:
    assert fitted.feature_names == (
        "sparse.category",
        "dense.price",
        "dense.ctr",
        *SEQ_AGGREGATES,
    )
    assert fitted.tasks == ("click", "order", "like")


def test_numeric_high_cardinality_and_no_sequence(
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
) -> None:
    cfg = FAST.model_copy(update={"high_cardinality": "numeric", "sequence_features": "none"})
    model = LightGBMRanker(cfg).fit(data[0])
    assert model.feature_names == (
        "sparse.user",
        "sparse.item",
        "sparse.category",
        "dense.price",
        "dense.ctr",
    )


def test_explicit_categorical_fields_validated(
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
) -> None:
    cfg = FAST.model_copy(update={"categorical_fields": ("categroy",)})
    with pytest.raises(ValueError, match="categroy"):
        LightGBMRanker(cfg).fit(data[0])


def test_state_round_trip_is_identical(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    state = fitted.state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["booster.click"].dtype == np.uint8
    assert "booster.like" not in state  # single-class task has no booster
    loaded = LightGBMRanker.from_state(FAST, state)
    assert loaded.feature_names == fitted.feature_names
    a, b = fitted.predict(data[2]), loaded.predict(data[2])
    for task in a:
        np.testing.assert_array_equal(a[task], b[task])


def test_single_class_task_predicts_base_rate(
    data: tuple[RankFeatures, RankFeatures, RankFeatures], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="funnelrec.rank.gbdt"):
        model = LightGBMRanker(FAST).fit(data[0])
    assert any(
        "'like'" in r.getMessage() and "single class" in r.getMessage() for r in caplog.records
    )
    np.testing.assert_array_equal(model.predict(data[2])["like"], np.zeros(len(data[2])))


def test_all_positive_task_predicts_one(
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
) -> None:
    train = data[0]
    ones = RankFeatures(
        train.spec,
        train.sparse,
        train.dense,
        train.sequences,
        {**train.labels, "like": np.ones(len(train), dtype=np.float32)},
        train.group,
        train.user_idx,
    )
    model = LightGBMRanker(FAST).fit(ones)
    assert np.all(model.predict(data[1])["like"] == 1.0)


def test_deterministic_for_a_seed(data: tuple[RankFeatures, RankFeatures, RankFeatures]) -> None:
    cfg = FAST.model_copy(update={"feature_fraction": 0.5, "seed": 3})
    a = LightGBMRanker(cfg).fit(data[0], data[1]).predict(data[2])
    b = LightGBMRanker(cfg).fit(data[0], data[1]).predict(data[2])
    np.testing.assert_array_equal(a["click"], b["click"])


def test_early_stopping_keeps_fewer_trees(
    data: tuple[RankFeatures, RankFeatures, RankFeatures],
) -> None:
    # A high learning rate overfits quickly: early stopping must cut the 400 rounds.
    cfg = FAST.model_copy(
        update={"n_estimators": 400, "learning_rate": 0.3, "early_stopping_rounds": 5}
    )
    model = LightGBMRanker(cfg).fit(data[0], data[1])
    text = model.state()["booster.order"].tobytes().decode()
    assert text.count("Tree=") < 400


def test_predict_checks_layout(
    fitted: LightGBMRanker, data: tuple[RankFeatures, RankFeatures, RankFeatures]
) -> None:
    test = data[2]
    other_spec = FeatureSpec(("a", "b", "c"), (5001, 2001, 11), 2, 6, 1, 2, SPEC.tasks)
    bad = RankFeatures(
        other_spec,
        test.sparse,
        test.dense,
        test.sequences,
        test.labels,
        test.group,
        test.user_idx,
    )
    with pytest.raises(ValueError, match="sparse fields"):
        fitted.predict(bad)


def test_unfitted_and_config_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _ = LightGBMRanker(FAST).feature_names
    with pytest.raises(ValidationError):
        LightGBMConfig(num_leafs=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LightGBMConfig(kind="xgboost")  # type: ignore[arg-type]
