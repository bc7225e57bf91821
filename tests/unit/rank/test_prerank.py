"""The pre-ranker's model: inputs, the cut, distillation and its state (no funnel needed)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.features.pit.evidence import evidence_columns
from funnelrec.metrics.rank import query_positions
from funnelrec.rank.config import PreRankConfig, RankConfig
from funnelrec.rank.prerank import (
    N_POPULARITY,
    PRERANK_COLUMN,
    PreRanker,
    build_inputs,
    item_popularity,
    teacher_kept,
)
from funnelrec.rank.prerank_train import DistillSet, distill, teacher_targets

NAMES = ("ev_a_hit", "ev_a_score", "ev_b_cos_last")


def _candidates(n_queries: int, per_query: int, rng: np.random.Generator) -> pl.DataFrame:
    n = n_queries * per_query
    return pl.DataFrame(
        {
            "query_id": np.repeat(np.arange(n_queries), per_query),
            "item_idx": rng.integers(0, 50, n).astype(np.int32),
            "merged_rank": np.tile(np.arange(1, per_query + 1), n_queries).astype(np.int32),
            "ev_a_hit": rng.integers(0, 2, n).astype(np.float32),
            "ev_a_score": rng.normal(size=n).astype(np.float32),
            "ev_b_cos_last": rng.uniform(-1, 1, n).astype(np.float32),
        }
    )


def _teacher(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A ranker that mostly follows a linear rule of the inputs, with noise."""
    true = np.array([1.0, 2.0, -1.5, -0.5, 0.8, 0.0, 0.3])[: x.shape[1]]
    return x @ true + 0.3 * rng.normal(size=x.shape[0])


def _distill_set(frame: pl.DataFrame, rng: np.random.Generator) -> DistillSet:
    popularity = rng.normal(size=(frame.height, N_POPULARITY)).astype(np.float32)
    x = build_inputs(frame, NAMES, popularity)
    return DistillSet(x, _teacher(x, rng), frame["query_id"].to_numpy().astype(np.int64))


def test_config_defaults_and_refusals() -> None:
    config = RankConfig().prerank
    assert (config.enabled, config.keep, config.model) == (True, 100, "linear")
    with pytest.raises(ValueError, match="extra"):
        PreRankConfig.model_validate({"kepe": 10})
    with pytest.raises(ValueError):
        PreRankConfig(keep=0)


def test_query_positions_and_kept_share() -> None:
    group = np.array([3, 3, 3, 3, 8, 8])
    teacher = np.array([4.0, 3.0, 2.0, 1.0, 1.0, 2.0])
    assert query_positions(group, teacher).tolist() == [0, 1, 2, 3, 1, 0]
    # The student keeps 2 of query 3's 4 rows: the teacher's 2nd and 4th; query 8 is not cut.
    student = np.array([0.0, 5.0, 1.0, 6.0, 0.0, 0.0])
    share, n_cut = teacher_kept(student, teacher, group, keep=2, k=2)
    assert (share, n_cut) == (0.5, 1)
    assert teacher_kept(student, teacher, group, keep=4, k=2) == (
        pytest.approx(np.nan, nan_ok=True),
        0,
    )


def test_item_popularity_reads_only_the_past() -> None:
    day = 86_400
    log_item = np.array([1, 1, 1, 2])
    log_t = np.array([5 * day, 14 * day, 16 * day - 5, 1 * day])
    t = np.array([16 * day, 16 * day, 16 * day, 14 * day])
    pop = item_popularity(np.array([1, 2, -1, 1]), t, log_item, log_t)
    counts = np.expm1(pop).round().astype(int)
    # item 1 at day 16: 1 event in the last day, 2 in the last 7 days, 3 in all; the event
    # at exactly t=14 days is not "before" the 4th sample's time.
    assert counts.tolist() == [[1, 2, 3], [0, 0, 1], [0, 0, 0], [0, 0, 1]]


def test_inputs_read_missing_evidence_as_zero() -> None:
    frame = pl.DataFrame(
        {"query_id": [0, 0], "item_idx": [1, 2], "merged_rank": [1, 2], "ev_a_hit": [1.0, None]}
    )
    x = build_inputs(frame, NAMES, np.ones((2, N_POPULARITY), dtype=np.float32))
    assert x.shape == (2, len(NAMES) + 1 + N_POPULARITY)
    assert x[:, 0].tolist() == [1.0, 0.0] and (x[:, 1:3] == 0).all()
    assert x[:, 3].tolist() == pytest.approx(np.log1p([1, 2]).tolist())


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_distillation_orders_like_the_teacher_on_held_out_queries(model: str) -> None:
    rng = np.random.default_rng(0)
    train = _distill_set(_candidates(60, 80, rng), rng)
    valid = _distill_set(_candidates(30, 80, rng), rng)
    test = _distill_set(_candidates(30, 80, rng), rng)
    config = PreRankConfig(model=model, keep=20, steps=150)
    params, stats = distill(train, valid, config, k=10, seed=0)
    assert stats["valid_queries_cut"] == 30 and 0 < stats["best_step"] <= 150
    pre = PreRanker(config, NAMES, np.zeros((50, N_POPULARITY), np.float32), params)
    share, _ = teacher_kept(pre.predict(test.x), test.teacher, test.group, keep=20, k=10)
    chance, _ = teacher_kept(rng.normal(size=len(test)), test.teacher, test.group, 20, 10)
    assert chance < 0.45  # about keep / 80 = 0.25
    assert share > 0.8, (share, chance)


def test_distillation_with_random_weights_is_no_better_than_chance() -> None:
    """The check above can fail: an untrained model keeps about a chance share."""
    rng = np.random.default_rng(1)
    test = _distill_set(_candidates(30, 80, rng), rng)
    params = {
        "mean": np.zeros(test.x.shape[1]),
        "scale": np.ones(test.x.shape[1]),
        "w1": rng.normal(size=(test.x.shape[1], 1)),
        "b1": np.zeros(1),
    }
    pre = PreRanker(PreRankConfig(keep=20), NAMES, np.zeros((0, N_POPULARITY), np.float32), params)
    share, _ = teacher_kept(pre.predict(test.x), test.teacher, test.group, keep=20, k=10)
    assert share < 0.8


def test_teacher_targets_weigh_the_head() -> None:
    weights = teacher_targets(np.array([3.0, 1.0, 2.0, 0.0]), np.zeros(4, dtype=np.int64), 2)
    assert weights.tolist() == pytest.approx([1.0, 0.0, 1 / np.log2(3), 0.0])


def _fitted(rng: np.random.Generator, keep: int = 7) -> tuple[PreRanker, pl.DataFrame]:
    frame = _candidates(4, 20, rng).vstack(
        _candidates(1, 5, rng).with_columns(query_id=pl.lit(9, dtype=pl.Int64))
    )
    train = _distill_set(frame, rng)
    config = PreRankConfig(keep=keep, model="mlp", hidden=4, steps=20)
    params, _ = distill(train, train, config, k=3, seed=0)
    popularity = rng.normal(size=(40, N_POPULARITY)).astype(np.float32)  # items >= 40: 0
    return PreRanker(config, NAMES, popularity, params), frame


def test_the_cut_keeps_exactly_keep_per_query() -> None:
    pre, frame = _fitted(np.random.default_rng(2))
    kept, rest = pre.cut(frame)
    per_query = dict(kept.group_by("query_id").len().iter_rows())
    assert per_query == {0: 7, 1: 7, 2: 7, 3: 7, 9: 5}  # query 9 has only 5
    assert kept.height + rest.height == frame.height
    assert set(kept.columns) - set(rest.columns) == set(evidence_columns(frame))
    both = pl.concat([kept, rest], how="diagonal")
    assert (
        both.select("query_id", "item_idx", "merged_rank")
        .sort("query_id", "merged_rank")["merged_rank"]
        .to_list()
        == frame.sort("query_id", "merged_rank")["merged_rank"].to_list()
    )
    # Everything kept scores at least as high as everything cut in the same query.
    low = kept.group_by("query_id").agg(pl.col(PRERANK_COLUMN).min().alias("low"))
    high = rest.group_by("query_id").agg(pl.col(PRERANK_COLUMN).max().alias("high"))
    assert (low.join(high, on="query_id").select(pl.col("low") >= pl.col("high"))).to_series().all()


@pytest.mark.parametrize("one_query", [False, True])
def test_selecting_among_rows_equals_selecting_in_their_frame(one_query: bool) -> None:
    pre, frame = _fitted(np.random.default_rng(4))
    if one_query:  # a served request: one query's candidates
        frame = frame.filter(pl.col("query_id") == 0)
    rows = np.flatnonzero(np.random.default_rng(5).random(frame.height) < 0.7)
    expected = pre.select(frame[rows])
    got = pre.select(frame, rows)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_round_trip_gives_identical_scores() -> None:
    pre, frame = _fitted(np.random.default_rng(3))
    state = pre.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    again = PreRanker.from_state(pre.config, state)
    assert again.names == pre.names
    np.testing.assert_array_equal(again.score(frame), pre.score(frame))


def test_mismatched_weights_are_refused() -> None:
    params = {"mean": np.zeros(3), "scale": np.ones(3), "w1": np.zeros((3, 1)), "b1": np.zeros(1)}
    with pytest.raises(ValueError, match="expected"):
        PreRanker(PreRankConfig(), NAMES, np.zeros((0, N_POPULARITY), np.float32), params)


def test_items_beyond_the_popularity_table_read_zeros() -> None:
    """Known items read their row (the all-known fast path); ingested ones read 0."""
    pre, _ = _fitted(np.random.default_rng(6))
    known = np.array([3, 0, 39])
    np.testing.assert_array_equal(pre._lookup(known), pre.popularity[known])
    mixed = pre._lookup(np.array([3, 40, -1, 39]))
    np.testing.assert_array_equal(mixed[[0, 3]], pre.popularity[[3, 39]])
    assert not mixed[[1, 2]].any()
    assert pre._lookup(np.zeros(0, dtype=np.int64)).shape == (0, N_POPULARITY)
