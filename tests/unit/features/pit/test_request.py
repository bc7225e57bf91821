"""The one-query path (a served request after the whole prepared log) gives exactly the
general path's features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures, PreparedLog
from funnelrec.features.pit.request import OneQuery
from funnelrec.features.pit.sequences import DeferredSequences
from funnelrec.features.spec import RankFeatures

Identical = Callable[[RankFeatures, RankFeatures], None]


def _request(user: int, items: np.ndarray, t: int) -> pl.DataFrame:
    n = items.shape[0]
    return pl.DataFrame(
        {
            "query_id": np.zeros(n, dtype=np.int64),
            "user_idx": np.full(n, user, dtype=np.int32),
            "item_idx": items.astype(np.int32),
            "timestamp": np.full(n, t, dtype=np.int64),
            "ev_a_score": np.linspace(-1.0, 1.0, n, dtype=np.float32),
        }
    )


def _check_requests(
    features: PointInTimeFeatures, data: Dataset, identical: Identical, seed: int
) -> None:
    log = data.interactions
    prepared = features.prepare(log)
    t_end = int(log["timestamp"].max())
    rng = np.random.default_rng(seed)
    active = log["user_idx"].value_counts(sort=True)["user_idx"].to_numpy()
    # The busiest users, random ones, unknown ones (negative, beyond the vocabulary).
    users = [*active[:3].tolist(), *rng.choice(data.n_users, 5).tolist(), -1, data.n_users + 7]
    gaps = [1, 60, 3_600, 86_400, 10 * 86_400, 400 * 86_400] * 2
    for user, gap in zip(users, gaps[: len(users)], strict=True):
        items = rng.choice(data.n_items, 80, replace=False)
        items[:3] = [-1, data.n_items, data.n_items + 50]  # unknown items read as no events
        request = _request(int(user), items, t_end + gap)
        assert OneQuery.of(request, prepared, features.config, features._state) is not None
        identical(features.transform(request, prepared), features.transform(request, log))


def test_one_query_path_equals_the_general_path(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, assert_identical: Identical
) -> None:
    data, _ = sim
    _check_requests(fitted, data, assert_identical, seed=0)


def test_one_query_path_with_other_windows_and_rules(
    sim: tuple[Dataset, pl.DataFrame], assert_identical: Identical
) -> None:
    """Unsorted windows (the trend reads the shortest and the longest), a sequence rule of
    its own, and recall evidence."""
    data, samples = sim
    samples = samples.with_columns(pl.lit(0.5, dtype=pl.Float32).alias("ev_a_score"))
    config = PointInTimeConfig(windows_s=(7 * 86_400, 3_600, 86_400), seq_events=("click",))
    features = PointInTimeFeatures(config).fit(data, samples, data.interactions)
    assert features.dense_names[-1] == "ev_a_score"
    _check_requests(features, data, assert_identical, seed=1)


def test_requests_the_one_query_path_leaves_to_the_general_path(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    """Times inside the log, several users or times, events posted since: the general path."""
    data, _ = sim
    log = data.interactions
    prepared = fitted.prepare(log)

    def _of(request: pl.DataFrame, index: PreparedLog) -> OneQuery | None:
        return OneQuery.of(request, index, fitted.config, fitted._state)

    t_end = int(log["timestamp"].max())
    items = np.arange(10)
    assert _of(_request(3, items, t_end + 1), prepared) is not None
    assert _of(_request(3, items, t_end), prepared) is None
    assert _of(_request(3, items, t_end + 1).head(0), prepared) is None
    two_users = pl.concat([_request(3, items, t_end + 1), _request(4, items, t_end + 1)])
    assert _of(two_users, prepared) is None
    two_times = pl.concat([_request(3, items, t_end + 1), _request(3, items, t_end + 2)])
    assert _of(two_times, prepared) is None
    assert _of(_request(3, items, t_end + 1), prepared.with_extra(log.head(2))) is None


def test_deferred_sequences_are_the_general_paths(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    """A served request's sequences, computed at first use, take and shorten like the
    general path's."""
    data, _ = sim
    log = data.interactions
    busiest = int(log["user_idx"].value_counts(sort=True)["user_idx"][0])
    request = _request(busiest, np.arange(30), int(log["timestamp"].max()) + 5)
    fast = fitted.transform(request, fitted.prepare(log)).sequences
    plain = fitted.transform(request, log).sequences
    assert isinstance(fast, DeferredSequences) and len(fast) == 30
    assert fast.length == plain.length
    rows = np.array([3, 0, 3])
    for got, expected in (
        (fast.take(rows).dense(), plain.take(rows).dense()),
        (fast.shortened(4).dense(), plain.shortened(4).dense()),
        (fast.dense(rows), plain.dense(rows)),
    ):
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
