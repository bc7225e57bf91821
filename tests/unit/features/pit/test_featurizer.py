"""The featurizer end to end: the no-future guarantee, a brute-force oracle, sparse ids,
unknown ids, input errors and a run on a simulated log."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.spec import RankFeatures
from funnelrec.rank.samples import index_log

DAY = 86400
T0 = 1_700_000_000
YEARS_10 = 10 * 365 * DAY
Identical = Callable[[RankFeatures, RankFeatures], None]


# --------------------------------------------------------------------------- no future
def _planted(data: Dataset, samples: pl.DataFrame) -> pl.DataFrame:
    """Events on every sample's user, item, (user, item) and (user, category) at the latest
    sample time, one second later and ten years later, of every event type."""
    t_max = int(samples["timestamp"].max())
    cats = data.item_categories
    assert cats is not None
    pairs = samples.select("user_idx", "item_idx").unique()
    user = pairs["user_idx"].to_numpy()
    item = pairs["item_idx"].to_numpy()
    # Another item of the same category: the first item of that category.
    first_of_cat = np.full(cats.max() + 1, -1)
    first_of_cat[cats[::-1]] = np.arange(cats.shape[0])[::-1]
    same_cat = first_of_cat[cats[item]]
    other_user = (user + 1) % data.n_users
    blocks = []
    for u, i in ((user, item), (user, same_cat), (other_user, item)):
        for t in (t_max, t_max + 1, t_max + YEARS_10):
            for event in ("impression", "click", "cart", "order"):
                blocks.append(
                    pl.DataFrame(
                        {
                            "user_idx": u.astype(np.int32),
                            "item_idx": i.astype(np.int32),
                            "timestamp": np.full(u.shape[0], t, dtype=np.int64),
                            "event": [event] * u.shape[0],
                        }
                    )
                )
    return pl.concat(blocks)


def test_future_events_change_no_feature_of_any_sample(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, assert_identical: Identical
) -> None:
    data, samples = sim
    log = data.interactions.select("user_idx", "item_idx", "timestamp", "event")
    before = fitted.transform(samples, log)
    planted = _planted(data, samples)
    # The latest slate's samples sit exactly at the planted time: the boundary is exclusive.
    assert (samples["timestamp"] == planted["timestamp"].min()).sum() > 0
    after = fitted.transform(samples, pl.concat([log, planted]).sample(fraction=1.0, seed=3))
    assert_identical(before, after)


def test_the_same_events_one_second_earlier_are_seen(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    """The previous test is not vacuous: shifted to t - 1 the planted events do change things."""
    data, samples = sim
    log = data.interactions.select("user_idx", "item_idx", "timestamp", "event")
    last = samples.filter(pl.col("timestamp") == pl.col("timestamp").max())
    planted = _planted(data, last).with_columns(pl.col("timestamp") - 1)
    planted = planted.filter(pl.col("timestamp") < int(last["timestamp"][0]))
    before = fitted.transform(last, log)
    after = fitted.transform(last, pl.concat([log, planted]))
    for key in ("dense", "seq_item", "seq_gap"):
        assert not np.array_equal(getattr(before, key), getattr(after, key)), key


def test_log_row_order_does_not_matter(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    a = fitted.transform(samples, data.interactions)
    b = fitted.transform(samples, data.interactions.sample(fraction=1.0, seed=1))
    np.testing.assert_array_equal(a.dense, b.dense)
    np.testing.assert_array_equal(a.sparse, b.sparse)


# --------------------------------------------------------------------------- sparse, labels
def test_hand_computed_sparse_labels_and_group(hand: tuple[Dataset, pl.DataFrame]) -> None:
    data, samples = hand
    pit = PointInTimeFeatures(PointInTimeConfig(seq_len=4)).fit(data, samples)
    feats = pit.transform(samples, data.interactions)
    # a=0, b=1, c=2 -> ids 1, 2, 3; categories X=0, Y=1 -> ids 1, 2.
    assert feats.sparse[:, :3].tolist() == [[1, 1, 1], [1, 2, 1]]
    assert feats.spec.sparse_names == ("user", "item", "category", "gender", "hour", "weekday")
    assert feats.sparse[0, 3] == 1  # gender F
    assert feats.labels["click"].tolist() == [1.0, 0.0]
    assert feats.group.tolist() == [0, 0]


# --------------------------------------------------------------------------- oracle
def test_brute_force_oracle_on_a_random_log() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    inter = pl.DataFrame(
        {
            "user_id": rng.integers(0, 15, n),
            "item_id": rng.integers(0, 30, n),
            "timestamp": T0 + rng.integers(0, 40 * DAY, n),
            "event": rng.choice(["impression", "impression", "click", "order"], n),
            "value": np.ones(n, dtype=np.float32),
        }
    )
    items = pl.DataFrame({"item_id": np.arange(30), "category": [f"c{i % 4}" for i in range(30)]})
    data = Dataset.build(inter, items)
    log = data.interactions
    pick = rng.choice(log.height, 60, replace=False)
    samples = log[pick].select("user_idx", "item_idx", "timestamp").with_row_index("query_id")
    samples = samples.with_columns(pl.col("query_id").cast(pl.Int64))
    pit = PointInTimeFeatures(PointInTimeConfig(seq_len=8)).fit(data, samples, log)
    raw = pit.raw_dense(samples, log)
    feats = pit.transform(samples, log)
    names = {name: j for j, name in enumerate(pit.dense_names)}
    cats = data.item_categories
    assert cats is not None
    pos_log = log.filter(pl.col("event") != "impression").with_columns(
        pl.Series("cat", cats[log.filter(pl.col("event") != "impression")["item_idx"]])
    )
    for r, (u, i, t) in enumerate(samples.select("user_idx", "item_idx", "timestamp").rows()):
        before = pos_log.filter(pl.col("timestamp") < t)
        mine = before.filter(pl.col("user_idx") == u)
        for w, label in ((DAY, "1d"), (7 * DAY, "7d"), (30 * DAY, "30d")):
            n_win = mine.filter(pl.col("timestamp") >= t - w).height
            assert raw[r, names[f"u_pos_{label}"]] == pytest.approx(math.log1p(n_win))
        item_rows = before.filter(pl.col("item_idx") == i)
        assert raw[r, names["i_pos_all"]] == pytest.approx(math.log1p(item_rows.height))
        if item_rows.height:
            first = item_rows["timestamp"].min()
            assert raw[r, names["i_first_age"]] == pytest.approx(math.log1p(t - first))
            n_day = item_rows.filter(pl.col("timestamp") >= t - DAY).height
            n_month = item_rows.filter(pl.col("timestamp") >= t - 30 * DAY).height
            assert raw[r, names["i_trend"]] == pytest.approx(n_day / max(n_month, 1))
        mine_uc = mine.filter(pl.col("cat") == cats[i])
        assert raw[r, names["uc_pos_all"]] == pytest.approx(math.log1p(mine_uc.height))
        if mine_uc.height:
            last_uc = mine_uc["timestamp"].max()
            assert raw[r, names["uc_recency"]] == pytest.approx(math.log1p(t - last_uc))
        imps = log.filter(
            (pl.col("timestamp") < t) & (pl.col("user_idx") == u) & (pl.col("item_idx") == i)
        )
        n_ui_imp = (imps["event"] == "impression").sum()
        assert raw[r, names["ui_imp_all"]] == pytest.approx(math.log1p(n_ui_imp))
        if mine.height:
            last = mine["timestamp"].max()
            assert raw[r, names["u_recency"]] == pytest.approx(math.log1p(t - last))
        # Sequence: latest 8 positives, most recent first (ties by log order).
        recent = mine.with_row_index("_r").sort("timestamp", "_r", descending=True).head(8)
        expect = recent["item_idx"].to_numpy() + 1
        got = feats.seq_item[r]
        assert got[: expect.shape[0]].tolist() == expect.tolist()
        assert (got[expect.shape[0] :] == 0).all()


# --------------------------------------------------------------------------- unknown ids
def test_unknown_users_and_items_get_id_zero_and_finite_dense(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, _ = sim
    t = int(data.interactions["timestamp"].max())
    samples = pl.DataFrame(
        {
            "query_id": [0, 1, 2],
            "user_idx": [-1, data.n_users + 3, 0],
            "item_idx": [-1, 0, data.n_items + 7],
            "timestamp": [t, t, t],
        }
    )
    feats = fitted.transform(samples, data.interactions)
    spec = feats.spec
    assert feats.sparse[0, :3].tolist() == [0, 0, 0]
    assert feats.sparse[1, 0] == 0 and feats.sparse[1, 1] == 1
    assert feats.sparse[2, 0] == 1 and feats.sparse[2, 1:3].tolist() == [0, 0]
    attrs = [spec.sparse_names.index(a) for a in ("age", "gender", "region")]
    assert (feats.sparse[:2, attrs] == 0).all()
    assert np.isfinite(feats.dense).all()
    assert (feats.seq_item[:2] == 0).all() and (feats.seq_gap[:2] == 0).all()
    assert feats.labels == {} and spec.tasks == ("click", "cart", "order")


def test_new_items_from_index_log_count_but_embed_as_unknown(
    hand: tuple[Dataset, pl.DataFrame],
) -> None:
    data, samples = hand
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, samples)
    t = T0 + 6 * DAY
    later = pl.DataFrame(
        {
            "user_id": ["u1", "u9", "u0"],
            "item_id": ["new", "new", "new"],
            "timestamp": [t - 20, t - 10, t - 5],
            "event": ["click"] * 3,
            "value": pl.Series([1.0] * 3, dtype=pl.Float32),
        }
    )
    log = index_log(pl.concat([data.interactions.drop("user_idx", "item_idx"), later]), data)
    new_item = int(log.filter(pl.col("item_id") == "new")["item_idx"][0])
    assert new_item == data.n_items
    s = pl.DataFrame({"query_id": [0], "user_idx": [0], "item_idx": [new_item], "timestamp": [t]})
    feats = pit.transform(s, log)
    assert feats.sparse[0, 1] == 0 and feats.sparse[0, 2] == 0
    raw = dict(zip(pit.dense_names, pit.raw_dense(s, log)[0], strict=True))
    assert raw["i_pos_all"] == pytest.approx(math.log1p(3))
    assert raw["ui_pos_all"] == pytest.approx(math.log1p(1))
    assert 0 not in feats.seq_item[0, :3]  # the new item is left out of the sequence


# --------------------------------------------------------------------------- errors
def test_bad_input_fails_loudly(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    with pytest.raises(RuntimeError, match="not fitted"):
        PointInTimeFeatures(PointInTimeConfig()).transform(samples, data.interactions)
    with pytest.raises(ValueError, match="samples: missing column 'timestamp'"):
        fitted.transform(samples.drop("timestamp"), data.interactions)
    with pytest.raises(ValueError, match="log: missing column 'event'"):
        fitted.transform(samples, data.interactions.drop("event"))
    with pytest.raises(ValueError, match="label_cart"):
        fitted.transform(samples.drop("label_cart"), data.interactions)
    with pytest.raises(ValueError):
        PointInTimeConfig(windows_s=(0,))


# --------------------------------------------------------------------------- simulated run
def test_simulated_run_shapes_ranges_and_standardisation(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    feats = fitted.transform(samples, data.interactions)
    spec = feats.spec
    n, length = samples.height, spec.seq_len
    assert len(feats) == n and spec.n_dense == len(spec.dense_names) == feats.dense.shape[1]
    assert feats.sparse.dtype == np.int64 and feats.sparse.shape == (n, spec.n_sparse)
    assert feats.dense.dtype == np.float32 and np.isfinite(feats.dense).all()
    assert feats.seq_item.shape == feats.seq_category.shape == feats.seq_gap.shape == (n, length)
    assert feats.seq_item.dtype == feats.seq_category.dtype == np.int64
    assert feats.seq_gap.dtype == np.float32
    assert (feats.sparse >= 0).all()
    assert (feats.sparse < np.array(spec.sparse_cardinalities)).all()
    assert feats.seq_item.max() < spec.sparse_cardinalities[spec.item_field]
    assert feats.seq_category.max() < spec.sparse_cardinalities[spec.category_field]
    assert ((feats.seq_item > 0) == (feats.seq_gap > 0)).all()
    # Padding only at the end of each row.
    filled = feats.seq_item > 0
    assert (filled[:, 1:] <= filled[:, :-1]).all()
    # Standardised on these very samples: mean ~0, std ~1 (clipping may shave a little).
    np.testing.assert_allclose(feats.dense.mean(axis=0), 0.0, atol=0.05)
    assert (feats.dense.std(axis=0) > 0.8).all()
    np.testing.assert_array_equal(feats.group, samples["query_id"].to_numpy())
    for task in spec.tasks:
        np.testing.assert_array_equal(feats.labels[task], samples[f"label_{task}"].to_numpy())
    assert set(feats.extra) >= {"item_idx", "timestamp", "position"}
    sub = feats.take(np.arange(10))
    assert len(sub) == 10
