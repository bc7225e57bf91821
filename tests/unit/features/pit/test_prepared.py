"""The prepared (serving) index gives exactly the plain path's features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeFeatures
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
