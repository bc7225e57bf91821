"""The prepared (serving) index gives exactly the plain path's features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeFeatures
from funnelrec.features.pit.log import EventRules, LogArrays
from funnelrec.features.spec import RankFeatures

Identical = Callable[[RankFeatures, RankFeatures], None]


def test_prepared_log_gives_the_plain_features(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, assert_identical: Identical
) -> None:
    """A serving-style request (one user's candidates, as of after the log, with events
    posted since) through the prepared index equals the plain path on the concatenated log."""
    data, samples = sim
    log = data.interactions
    prepared = fitted.prepare(log)
    t_end = int(log["timestamp"].max())
    rng = np.random.default_rng(0)
    users = rng.choice(data.n_users, 5, replace=False)
    for user in users:
        items = rng.choice(data.n_items, 60, replace=False)
        request = pl.DataFrame(
            {
                "query_id": np.zeros(60, dtype=np.int64),
                "user_idx": np.full(60, user, dtype=np.int32),
                "item_idx": items.astype(np.int32),
                "timestamp": np.full(60, t_end + 100, dtype=np.int64),
            }
        )
        extra = pl.DataFrame(
            {
                "user_idx": np.full(4, user, dtype=np.int32),
                "item_idx": items[:4].astype(np.int32),
                "timestamp": np.array([t_end + 1, t_end + 2, t_end + 2, t_end + 500]),
                "event": ["impression", "click", "cart", "click"],
            }
        ).cast({"user_idx": log["user_idx"].dtype, "item_idx": log["item_idx"].dtype})
        plain = fitted.transform(
            request, pl.concat([log.select(extra.columns), extra], how="vertical")
        )
        assert_identical(fitted.transform(request, prepared.with_extra(extra)), plain)
    # Training-style samples (earlier than parts of the log) match too.
    head = samples.head(500)
    assert_identical(fitted.transform(head, prepared), fitted.transform(head, log))


def test_prepared_log_falls_back_before_its_start(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, assert_identical: Identical
) -> None:
    data, samples = sim
    late = data.interactions.filter(pl.col("timestamp") > samples["timestamp"].median())
    early = samples.head(50)
    assert_identical(fitted.transform(early, fitted.prepare(late)), fitted.transform(early, late))


def test_prepared_log_with_no_samples(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    empty = samples.head(0)
    out = fitted.transform(empty, fitted.prepare(data.interactions))
    assert out.sparse.shape[0] == 0 and out.dense.shape == (0, fitted.spec.n_dense)


def test_user_arrays_are_the_users_rows_read_as_arrays(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    """The arrays gathered from the cached columns and flags equal a fresh read of
    :meth:`PreparedLog.rows_of_users`, with extra events in other dtypes (cast to the log's)
    and under a rule the index was not prepared with (flags computed on first use)."""
    data, _ = sim
    log = data.interactions
    prepared = fitted.prepare(log)
    users = np.array([3, 3, 11, 10**6, -1], dtype=np.int64)  # repeats, unknown, negative
    extra = pl.DataFrame(
        {
            "user_idx": np.array([3, 11], dtype=np.int64),
            "item_idx": np.array([5, 7], dtype=np.int64),
            "timestamp": np.full(2, log["timestamp"].to_numpy().max() + 1, dtype=np.int64),
            "event": ["click", "impression"],
        }
    )
    assert extra.schema != log.select(extra.columns).schema
    seeded = EventRules.of(fitted.config, fitted.positive_events)
    for rules in (seeded, EventRules(("order",), "cart", ("click",))):
        for index in (prepared, prepared.with_extra(extra)):
            got = index.user_arrays(users, rules)
            expected = LogArrays.of(index.rows_of_users(users), rules)
            for field in ("user", "item", "timestamp"):
                np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
            assert got.flags.keys() == expected.flags.keys()
            for kind, flag in expected.flags.items():
                np.testing.assert_array_equal(got.flags[kind], flag, err_msg=kind)


def test_the_cache_belongs_to_the_log_it_indexes(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    """Copies with extra events share the log's cached arrays; another log gets its own."""
    data, _ = sim
    log = data.interactions
    prepared = fitted.prepare(log)
    rules = EventRules.of(fitted.config, fitted.positive_events)
    users = np.arange(20, dtype=np.int64)
    prepared.with_extra(None).user_arrays(users, rules)
    assert prepared.with_extra(log.head(3)).cache is prepared.cache
    assert prepared.cache.columns is not None
    # Another log (the same rows, timestamps moved) is indexed and cached on its own.
    moved = fitted.prepare(log.with_columns(pl.col("timestamp") + 1))
    assert moved.cache is not prepared.cache and moved.cache.columns is None
    shifted = moved.user_arrays(users, rules).timestamp
    np.testing.assert_array_equal(shifted, prepared.user_arrays(users, rules).timestamp + 1)


def test_prepared_log_with_a_sequence_rule_of_its_own(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, assert_identical: Identical
) -> None:
    """Features whose sequence has its own events match the plain path, whether their index
    was prepared by them or by features without that rule (flags computed on first use)."""
    data, samples = sim
    log = data.interactions
    config = fitted.config.model_copy(update={"seq_events": ("click",)})
    clicks = PointInTimeFeatures(config).fit(data, samples, log)
    head = samples.head(300)
    plain = clicks.transform(head, log)
    assert_identical(clicks.transform(head, clicks.prepare(log)), plain)
    assert_identical(clicks.transform(head, fitted.prepare(log)), plain)
