"""Ranking samples and labels: windows, slate grouping, attribution, candidates, subsampling."""

import logging

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.rank.labels import TaskLabel, tasks_for_events
from funnelrec.rank.samples import (
    NEG_WEIGHT,
    SampleConfig,
    candidate_samples,
    impression_samples,
    index_log,
    negative_keep_rate,
    negative_weights,
    resolve_source,
)

H = 3600
DAY = 86400
T = 1_700_000_000


def _log(rows: list[tuple]) -> pl.DataFrame:
    """Rows (user_idx, item_idx, timestamp, event[, session_id])."""
    cols = ["user_idx", "item_idx", "timestamp", "event", "session_id"][: len(rows[0])]
    df = pl.DataFrame(rows, schema=cols, orient="row")
    return df.with_columns(
        pl.col("user_idx").cast(pl.Int32),
        pl.col("item_idx").cast(pl.Int32),
        pl.col("timestamp").cast(pl.Int64),
    )


def _labels(samples: pl.DataFrame, task: str) -> list[float]:
    return samples[f"label_{task}"].to_list()


def test_click_and_order_windows() -> None:
    # MIND-style: the click on item 1 shares the impression's timestamp.
    log = _log(
        [
            (0, 1, T, "impression"),
            (0, 2, T, "impression"),
            (0, 3, T, "impression"),
            (0, 1, T, "click"),
            (0, 2, T + H + 1, "click"),  # one second after the 1 h window
            (0, 3, T + H, "click"),  # exactly at the window's end: inside
            (0, 3, T + 20 * H, "order"),  # within 24 h
            (0, 1, T + 25 * H, "order"),  # after 24 h
        ]
    )
    s = impression_samples(log, SampleConfig())
    assert s["item_idx"].to_list() == [1, 2, 3]
    assert _labels(s, "click") == [1.0, 0.0, 1.0]
    assert _labels(s, "order") == [0.0, 0.0, 1.0]
    assert _labels(s, "cart") == [0.0, 0.0, 0.0]
    long = SampleConfig(tasks={"order": TaskLabel(events=("order",), window_s=None)})
    assert _labels(impression_samples(log, long), "order") == [1.0, 0.0, 1.0]


def test_events_before_the_exposure_never_label_it() -> None:
    log = _log([(0, 1, T - 5, "click"), (0, 1, T, "impression")])
    s = impression_samples(log, SampleConfig())
    assert _labels(s, "click") == [0.0]


def test_samples_table_schema_and_order() -> None:
    log = _log([(1, 5, T + 10, "impression", 9), (0, 4, T, "impression", 8)])
    log = log.with_columns(pl.Series("position", [0, 0], dtype=pl.Int32))
    s = impression_samples(log, SampleConfig())
    assert s.columns[:7] == [
        "query_id",
        "user_idx",
        "item_idx",
        "timestamp",
        "label_click",
        "label_cart",
        "label_order",
    ]
    assert {"session_id", "position"} <= set(s.columns)
    assert s.schema["query_id"] == pl.Int64 and s.schema["user_idx"] == pl.Int32
    assert s.schema["item_idx"] == pl.Int32 and s.schema["timestamp"] == pl.Int64
    assert s.schema["label_click"] == pl.Float32
    assert s["query_id"].to_list() == [0, 1]  # numbered in time order
    assert s["user_idx"].to_list() == [0, 1]


def test_slates_group_by_user_session_and_time() -> None:
    with_session = _log(
        [
            (0, 1, T, "impression", 7),
            (0, 2, T, "impression", 7),
            (0, 3, T + 60, "impression", 7),  # a second slate of the same session
            (1, 1, T, "impression", 8),  # another user at the same time
            (0, 4, T, "impression", 9),  # same user and time, another session
        ]
    )
    s = impression_samples(with_session, SampleConfig())
    groups = s.group_by("query_id").agg("item_idx").sort("query_id")["item_idx"].to_list()
    assert sorted(sorted(g) for g in groups) == [[1], [1, 2], [3], [4]]
    without = impression_samples(with_session.drop("session_id"), SampleConfig())
    groups = without.group_by("query_id").agg("item_idx")["item_idx"].to_list()
    assert sorted(sorted(g) for g in groups) == [[1], [1, 2, 4], [3]]


def test_item_shown_twice_in_a_slate_is_one_sample() -> None:
    log = _log([(0, 1, T, "impression"), (0, 1, T, "impression"), (0, 1, T, "click")])
    s = impression_samples(log, SampleConfig())
    assert s.height == 1 and _labels(s, "click") == [1.0]


def test_last_exposure_attribution() -> None:
    # Item 1 shown unclicked at T, shown again at T + 100 and clicked at T + 105.
    log = _log(
        [
            (0, 1, T, "impression"),
            (0, 1, T + 100, "impression"),
            (0, 1, T + 105, "click"),
        ]
    )
    assert _labels(impression_samples(log, SampleConfig()), "click") == [0.0, 1.0]
    every = SampleConfig(attribution="all")
    assert _labels(impression_samples(log, every), "click") == [1.0, 1.0]


def test_no_impressions_is_a_clear_error() -> None:
    log = _log([(0, 1, T, "click")])
    with pytest.raises(ValueError, match="candidate_samples"):
        impression_samples(log, SampleConfig())
    assert resolve_source(log, SampleConfig()) == "recall"
    assert resolve_source(_log([(0, 1, T, "impression")]), SampleConfig()) == "impressions"
    assert resolve_source(log, SampleConfig(source="impressions")) == "impressions"


def test_missing_column_is_named() -> None:
    with pytest.raises(ValueError, match="'event'"):
        impression_samples(_log([(0, 1, T, "impression")]).drop("event"), SampleConfig())
    q = pl.DataFrame({"query_id": [0], "user_idx": [0]})
    c = pl.DataFrame({"query_id": [0], "item_idx": [1]})
    with pytest.raises(ValueError, match="queries: missing column 'timestamp'"):
        candidate_samples(q, c, _log([(0, 1, T, "click")]), SampleConfig())


def test_task_event_absent_from_the_log_warns(caplog: pytest.LogCaptureFixture) -> None:
    log = _log([(0, 1, T, "impression"), (0, 1, T, "click")])
    tasks = {"click": TaskLabel(events=("click",)), "like": TaskLabel(events=("like",))}
    cfg = SampleConfig(tasks=tasks)
    with caplog.at_level(logging.WARNING, logger="funnelrec.rank.labels"):
        s = impression_samples(log, cfg)
    assert _labels(s, "like") == [0.0]
    assert "'like'" in caplog.text


def _candidates() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    queries = pl.DataFrame({"query_id": [10, 11], "user_idx": [0, 1], "timestamp": [T, T]})
    candidates = pl.DataFrame(
        {
            "query_id": [10, 10, 10, 11, 11],
            "item_idx": [1, 2, 3, 1, 4],
            "source": ["itemcf", "popular", "itemcf", "popular", "popular"],
            "source_rank": [1, 1, 2, 1, 2],
            "recall_score": [0.9, 0.5, 0.4, 0.8, 0.1],
        }
    )
    future = _log(
        [
            (0, 1, T - 10, "click"),  # before the query: ignored
            (0, 2, T + 30, "click"),
            (0, 2, T + 2 * H, "order"),
            (0, 9, T + 40, "click"),  # not a candidate: no sample
            (1, 4, T + 3 * H, "click"),  # outside the 1 h click window
        ]
    )
    return queries, candidates, future


def test_candidate_samples_labels_and_passthrough() -> None:
    queries, candidates, future = _candidates()
    s = candidate_samples(queries, candidates, future, SampleConfig())
    assert s.select("query_id", "item_idx").rows() == [(10, 1), (10, 2), (10, 3), (11, 1), (11, 4)]
    assert _labels(s, "click") == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert _labels(s, "order") == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert s["user_idx"].to_list() == [0, 0, 0, 1, 1]
    assert s["timestamp"].to_list() == [T] * 5
    assert s["source_rank"].to_list() == [1, 1, 2, 1, 2]
    assert s["recall_score"].to_list() == [0.9, 0.5, 0.4, 0.8, 0.1]
    assert "source" in s.columns


def test_candidate_samples_keep_each_pairs_first_row_in_query_order() -> None:
    """Queries out of order and items repeated (two channels, one item): one sample per
    (query, item), from its first row, in query order then candidate order."""
    rng = np.random.default_rng(11)
    n = 400
    candidates = pl.DataFrame(
        {
            "query_id": rng.integers(0, 30, n),
            "item_idx": rng.integers(0, 25, n).astype(np.int32),
            "source_rank": np.arange(n),
        }
    )
    queries = pl.DataFrame(
        {"query_id": np.arange(30), "user_idx": np.arange(30) % 4, "timestamp": [T] * 30}
    )
    s = candidate_samples(queries, candidates, _log([(0, 1, T, "click")]), SampleConfig())
    expected = (
        candidates.with_row_index("_row")
        .sort("query_id", "_row")
        .unique(["query_id", "item_idx"], keep="first", maintain_order=True)
    )
    assert (
        s.select("query_id", "item_idx", "source_rank").rows()
        == expected.select("query_id", "item_idx", "source_rank").rows()
    )
    assert s.height < n


def test_candidate_samples_bad_input() -> None:
    queries, candidates, future = _candidates()
    with pytest.raises(ValueError, match="query_id 12 is not in queries"):
        extra = pl.DataFrame({"query_id": [12], "item_idx": [1]})
        orphan = pl.concat([candidates, extra], how="diagonal")
        candidate_samples(queries, orphan, future, SampleConfig())
    with pytest.raises(ValueError, match="repeated"):
        candidate_samples(pl.concat([queries, queries]), candidates, future, SampleConfig())


def _slates(n_queries: int = 40, per: int = 10) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for q in range(n_queries):
        items = rng.choice(200, per, replace=False)
        rows += [(q % 7, int(i), T + q * 1000, "impression") for i in items]
        rows += [(q % 7, int(i), T + q * 1000 + 3, "click") for i in items[:2]]
    return _log(rows)


def test_negative_subsampling_is_deterministic_per_seed() -> None:
    log = _slates()
    full = impression_samples(log, SampleConfig())
    cfg = SampleConfig(max_negatives_per_query=3)
    a = impression_samples(log, cfg, rng=np.random.default_rng(1))
    b = impression_samples(log, cfg, rng=np.random.default_rng(1))
    c = impression_samples(log, cfg, rng=np.random.default_rng(2))
    assert a.equals(b)
    assert not a.equals(c)
    assert impression_samples(log, cfg).equals(impression_samples(log, cfg))  # config seed
    # Every positive kept; at most 3 negatives per query; labels unchanged by subsampling.
    assert a["label_click"].sum() == full["label_click"].sum() == 80
    per_query = a.filter(pl.col("label_click") == 0).group_by("query_id").len()["len"]
    assert per_query.max() == 3 and a.height == 40 * (2 + 3)
    assert (
        a.join(full, on=["query_id", "item_idx"])
        .filter(pl.col("label_click") != pl.col("label_click_right"))
        .is_empty()
    )
    none = impression_samples(log, SampleConfig(max_negatives_per_query=0))
    assert none.height == 80


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        SampleConfig(max_negatives=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SampleConfig(tasks={"bad name": TaskLabel(events=("click",))})
    with pytest.raises(ValidationError):
        SampleConfig(tasks={})


def test_index_log_keeps_new_ids_distinct() -> None:
    train = pl.DataFrame(
        {
            "user_id": [1, 2],
            "item_id": ["a", "b"],
            "timestamp": [0, 1],
            "event": ["click", "click"],
            "value": [1.0, 1.0],
        }
    )
    data = Dataset.build(train)
    later = pl.DataFrame({"user_id": [2, 3, 3, 1], "item_id": ["c", "a", "d", "c"]})
    out = index_log(later, data)
    assert out["user_idx"].to_list() == [1, 2, 2, 0]
    assert out["item_idx"].to_list() == [2, 0, 3, 2]  # c and d new: 2 and 3, distinct


def test_simulated_log_every_event_credited_once() -> None:
    sim = simulate(SimulatorConfig.for_interactions(20_000))
    data = Dataset.build(sim.interactions, sim.items, sim.users)
    cfg = SampleConfig(tasks=tasks_for_events(data.interactions["event"].unique()))
    s = impression_samples(data.interactions, cfg)
    n = dict(data.interactions.group_by("event").len().iter_rows())
    assert s.height == n["impression"]
    # The simulator's funnel events follow their impression within minutes to hours, and the
    # next slate starts after them, so last-exposure attribution credits each exactly once.
    for task in ("click", "cart", "order"):
        assert s[f"label_{task}"].sum() == n[task]
    assert s.filter((pl.col("label_cart") > 0) & (pl.col("label_click") == 0)).is_empty()
    assert s.filter((pl.col("label_order") > 0) & (pl.col("label_cart") == 0)).is_empty()
    # One query per slate: a slate holds at most slate_size items at one time.
    per_query = s.group_by("query_id").agg(pl.len(), pl.col("timestamp").n_unique().alias("t"))
    assert per_query["len"].max() <= SimulatorConfig().slate_size
    assert per_query["t"].max() == 1


def _funnel_log(seed: int = 3, n_users: int = 30, n_items: int = 50) -> pl.DataFrame:
    """Slates of 8 impressions; clicks on some, and cart/order/fav events both on clicked and
    on never-clicked exposures (Taobao logs half their orders without a click in the hour)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []
    for q in range(60):
        user, t = int(rng.integers(n_users)), T + q * 10 * DAY
        items = rng.choice(n_items, 8, replace=False)
        rows += [(user, int(i), t, "impression") for i in items]
        for i in items:
            clicked = rng.random() < 0.4
            if clicked:
                rows.append((user, int(i), t + 60, "click"))
            for event in ("cart", "order", "fav"):
                if rng.random() < (0.5 if clicked else 0.3):
                    rows.append((user, int(i), t + 2 * H, event))
    return _log(rows)


def _assert_no_post_click_positive_without_click(s: pl.DataFrame, tasks: list[str]) -> None:
    for task in tasks:
        assert s[f"label_{task}"].sum() > 0  # the check below is not vacuous
        orphan = s.filter((pl.col(f"label_{task}") > 0) & (pl.col("label_click") == 0))
        assert orphan.is_empty(), f"{task}: {orphan.height} positives without a click"


def test_post_click_labels_need_the_click_for_impression_samples() -> None:
    log = _funnel_log()
    tasks = tasks_for_events(log["event"].unique())
    assert list(tasks) == ["click", "fav", "cart", "order"]
    s = impression_samples(log, SampleConfig(tasks=tasks))
    _assert_no_post_click_positive_without_click(s, ["fav", "cart", "order"])
    # The log does hold orders without a click: labelled independently they would count.
    free = {t: v.model_copy(update={"after": None}) for t, v in tasks.items()}
    loose = impression_samples(log, SampleConfig(tasks=free))
    assert not loose.filter((pl.col("label_order") > 0) & (pl.col("label_click") == 0)).is_empty()
    # Post-click labels are exactly the independent ones AND click.
    expected = loose["label_order"] * loose["label_click"]
    assert s["label_order"].to_list() == expected.to_list()


def test_post_click_labels_need_the_click_for_candidate_samples() -> None:
    log = _funnel_log(seed=4)
    imp = log.filter(pl.col("event") == "impression")
    queries = imp.group_by("user_idx", "timestamp").agg().sort("timestamp", "user_idx")
    queries = queries.with_row_index("query_id").with_columns(pl.col("query_id").cast(pl.Int64))
    candidates = imp.join(queries, on=["user_idx", "timestamp"]).select("query_id", "item_idx")
    future = log.filter(pl.col("event") != "impression")
    # Recall-source labels use the whole window (as the pipeline builds them): rebuilt tasks
    # keep the default after="click".
    tasks = {
        t: TaskLabel(events=v.events, window_s=None)
        for t, v in tasks_for_events(log["event"].unique()).items()
    }
    s = candidate_samples(queries, candidates, future, SampleConfig(source="recall", tasks=tasks))
    _assert_no_post_click_positive_without_click(s, ["fav", "cart", "order"])


def test_cyclic_after_links_are_rejected_by_the_config() -> None:
    cycle = {"a": TaskLabel(events=("x",), after="b"), "b": TaskLabel(events=("y",), after="a")}
    with pytest.raises(ValidationError, match="cycle"):
        SampleConfig(tasks=cycle)


def test_subsampling_records_negative_weights_and_keep_rate() -> None:
    log = _slates(n_queries=30, per=10)  # 2 positives and 8 negatives per query
    full = impression_samples(log, SampleConfig())
    assert NEG_WEIGHT not in full.columns  # no subsampling: the table is unchanged
    assert negative_keep_rate(full) == 1.0 and negative_weights(full).tolist() == [1.0] * 300
    s = impression_samples(log, SampleConfig(max_negatives_per_query=3))
    assert s.schema[NEG_WEIGHT] == pl.Float64
    negative = s["label_click"] == 0
    assert s.filter(~negative)[NEG_WEIGHT].to_list() == [1.0] * 60
    assert s.filter(negative)[NEG_WEIGHT].to_list() == pytest.approx([8 / 3] * 90)
    assert negative_keep_rate(s) == pytest.approx(3 / 8)
    # Weighted, the kept negatives count as many as before subsampling, query by query.
    per_query = s.filter(negative).group_by("query_id").agg(pl.col(NEG_WEIGHT).sum())
    assert per_query[NEG_WEIGHT].to_list() == pytest.approx([8.0] * 30)
    # A query with fewer negatives than k keeps them all, with weight 1.
    small = impression_samples(log, SampleConfig(max_negatives_per_query=20))
    assert small.height == 300 and small[NEG_WEIGHT].to_list() == [1.0] * 300
    assert negative_keep_rate(small) == 1.0


def test_negative_keep_rate_with_uneven_queries_and_subsets() -> None:
    rows = [(0, i, T, "impression") for i in range(12)] + [(0, 0, T + 1, "click")]
    rows += [(1, i, T + DAY, "impression") for i in range(4)] + [(1, 0, T + DAY + 1, "click")]
    s = impression_samples(_log(rows), SampleConfig(max_negatives_per_query=2))
    weights = (
        s.filter(pl.col("label_click") == 0).group_by("query_id").agg(pl.col(NEG_WEIGHT).first())
    )
    assert dict(weights.sort("query_id").iter_rows()) == {0: 11 / 2, 1: 3 / 2}
    assert negative_keep_rate(s) == pytest.approx(4 / 14)  # 2 + 2 kept of 11 + 3
    first = s.filter(pl.col("query_id") == 0)  # whole queries: the rate of that subset
    assert negative_keep_rate(first) == pytest.approx(2 / 11)
    assert negative_keep_rate(s.clear()) == 1.0
