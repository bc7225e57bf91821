"""Censored labels and conversion delays agree with the one labeller."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.rank.delay.censor import censor_tasks, conversion_delays, observed_labels
from funnelrec.rank.delay.methods import replay
from funnelrec.rank.labels import TaskLabel, label_exposures

ORDER = TaskLabel(events=("order",), window_s=None, after=None)


def _log(seed: int = 0, n: int = 400) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    exposures = pl.DataFrame(
        {
            "user_idx": rng.integers(0, 30, n),
            "item_idx": rng.integers(0, 30, n),
            "timestamp": rng.integers(0, 100_000, n),
        }
    ).unique(["user_idx", "item_idx"])
    conv = exposures.sample(fraction=0.4, seed=seed)
    delay = rng.integers(1, 50_000, conv.height)
    events = conv.with_columns(
        (pl.col("timestamp") + pl.Series(delay)).alias("timestamp"), pl.lit("order").alias("event")
    )
    return exposures, events


def test_delay_is_finite_exactly_where_the_label_is_one() -> None:
    exposures, events = _log()
    delay = conversion_delays(exposures, events, ORDER)
    labels = label_exposures(exposures, events, {"order": ORDER})["order"]
    np.testing.assert_array_equal(np.isfinite(delay), labels > 0)
    assert (delay[np.isfinite(delay)] > 0).all()


def test_observed_labels_match_the_replayed_window_labels() -> None:
    exposures, events = _log(seed=1)
    delay = conversion_delays(exposures, events, ORDER)
    cutoff, window = 80_000, 10_000
    t = exposures["timestamp"].to_numpy()
    seen = replay(np.zeros((t.shape[0], 1), np.int64), t, delay, cutoff=cutoff, window_s=window)
    keep = t + window <= cutoff
    labels = observed_labels(
        exposures.filter(pl.Series(keep)),
        events,
        {"order": ORDER},
        cutoff=cutoff,
        label_window_s=window,
    )["order"]
    np.testing.assert_array_equal(labels, seen.window_label)


def test_censor_tasks_keeps_shorter_windows_and_none_is_identity() -> None:
    tasks = {"click": TaskLabel(events=("click",), window_s=600, after=None), "order": ORDER}
    censored = censor_tasks(tasks, 3600)
    assert censored["click"].window_s == 600
    assert censored["order"].window_s == 3600
    assert censor_tasks(tasks, None) == tasks
