"""Point-in-time ranking features: the no-future guarantee, hand-computed values, a brute-force
oracle, unknown ids, persistence and a run on a simulated log."""

import math

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.data.simulator import SimulatorConfig, simulate
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.rank.samples import SampleConfig, impression_samples, index_log
from funnelrec.features.spec import RankFeatures

DAY = 86400
T0 = 1_700_000_000
YEARS_10 = 10 * 365 * DAY


def _arrays(f: RankFeatures) -> dict[str, np.ndarray]:
    out = dict(f.arrays())
    out.update(group=f.group, user_idx=f.user_idx)
    out.update({f"extra_{k}": v for k, v in f.extra.items()})
    return out


def _assert_identical(a: RankFeatures, b: RankFeatures) -> None:
    assert a.spec == b.spec
    arrays_a, arrays_b = _arrays(a), _arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for key, value in arrays_a.items():
        assert value.dtype == arrays_b[key].dtype, key
        np.testing.assert_array_equal(value, arrays_b[key], err_msg=key)


@pytest.fixture(scope="module")
def sim() -> tuple[Dataset, pl.DataFrame]:
    data = simulate(SimulatorConfig.for_interactions(20_000))
    dataset = Dataset.build(data.interactions, data.items, data.users)
    return dataset, impression_samples(dataset.interactions, SampleConfig())


@pytest.fixture(scope="module")
def fitted(sim: tuple[Dataset, pl.DataFrame]) -> PointInTimeFeatures:
    data, samples = sim
    return PointInTimeFeatures(PointInTimeConfig()).fit(data, samples, data.interactions)


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
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    log = data.interactions.select("user_idx", "item_idx", "timestamp", "event")
    before = fitted.transform(samples, log)
    planted = _planted(data, samples)
    # The latest slate's samples sit exactly at the planted time: the boundary is exclusive.
    assert (samples["timestamp"] == planted["timestamp"].min()).sum() > 0
    after = fitted.transform(samples, pl.concat([log, planted]).sample(fraction=1.0, seed=3))
    _assert_identical(before, after)


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


# --------------------------------------------------------------------------- hand-computed
def _hand() -> tuple[Dataset, pl.DataFrame]:
    rows = [  # user, item, t, event
        ("u0", "a", T0, "impression"),
        ("u0", "a", T0 + 10, "click"),
        ("u0", "b", T0 + DAY, "impression"),
        ("u0", "c", T0 + 2 * DAY - 5, "impression"),
        ("u0", "c", T0 + 2 * DAY, "click"),
        ("u0", "c", T0 + 2 * DAY + 100, "order"),
        ("u1", "a", T0 + 3 * DAY, "click"),
        ("u0", "b", T0 + 5 * DAY, "impression"),  # the sample's own slate: not before it
        ("u0", "a", T0 + 5 * DAY, "click"),  # at the sample time: not before it
    ]
    inter = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "event"], orient="row")
    inter = inter.with_columns(pl.lit(1.0, dtype=pl.Float32).alias("value"))
    items = pl.DataFrame(
        {"item_id": ["a", "b", "c"], "category": ["X", "X", "Y"], "created_at": [T0 - 1000] * 3}
    )
    users = pl.DataFrame({"user_id": ["u0", "u1"], "gender": ["F", "M"]})
    data = Dataset.build(inter, items, users)
    t = T0 + 5 * DAY
    samples = pl.DataFrame(
        {
            "query_id": [0, 0],
            "user_idx": [0, 0],  # u0
            "item_idx": [0, 1],  # a, b
            "timestamp": [t, t],
            "label_click": [1.0, 0.0],
        }
    )
    return data, samples


def test_hand_computed_counts_recency_and_sequence() -> None:
    data, samples = _hand()
    cfg = PointInTimeConfig(ctr_prior=0.0, seq_len=4)
    pit = PointInTimeFeatures(cfg).fit(data, samples, data.interactions)
    raw = dict(zip(pit.dense_names, pit.raw_dense(samples, data.interactions)[0], strict=True))
    lg = math.log1p
    expected = {
        "u_pos_1d": lg(0),
        "u_pos_7d": lg(3),  # click a, click c, order c
        "u_pos_30d": lg(3),
        "u_pos_all": lg(3),
        "u_recency": lg(3 * DAY - 100),  # since the order at 2 d + 100 s
        "u_imp_all": lg(3),  # a, b, c; not the sample's own impression
        "u_ctr": 2 / 3,
        "i_pos_1d": lg(0),
        "i_pos_7d": lg(2),  # u0 at +10 s, u1 at 3 d
        "i_pos_all": lg(2),
        "i_recency": lg(2 * DAY),
        "i_imp_all": lg(1),
        "i_ctr": 1.0,  # 2 clicks / 1 impression, capped
        "i_age": lg(5 * DAY + 1000),
        "uc_pos_1d": lg(0),
        "uc_pos_7d": lg(1),  # category X: click a
        "uc_pos_all": lg(1),
        "uc_share": 1 / 3,
        "ui_pos_all": lg(1),
        "ui_imp_all": lg(1),
    }
    for name, value in expected.items():
        assert raw[name] == pytest.approx(value), name
    feats = pit.transform(samples, data.interactions)
    # a=0, b=1, c=2 -> ids 1, 2, 3; categories X=0, Y=1 -> ids 1, 2.
    assert feats.sparse[:, :3].tolist() == [[1, 1, 1], [1, 2, 1]]
    assert feats.spec.sparse_names == ("user", "item", "category", "gender", "hour", "weekday")
    assert feats.sparse[0, 3] == 1  # gender F
    # Most recent first: order c, click c, click a; then padding.
    assert feats.seq_item[0].tolist() == [3, 3, 1, 0]
    assert feats.seq_category[0].tolist() == [2, 2, 1, 0]
    np.testing.assert_allclose(
        feats.seq_gap[0], [lg(3 * DAY - 100), lg(3 * DAY), lg(5 * DAY - 10), 0.0], rtol=1e-6
    )
    clicks_only = PointInTimeFeatures(cfg.model_copy(update={"seq_events": ("click",)}))
    seq = clicks_only.fit(data, samples).transform(samples, data.interactions).seq_item
    assert seq[0].tolist() == [3, 1, 0, 0]
    assert feats.labels["click"].tolist() == [1.0, 0.0]
    assert feats.group.tolist() == [0, 0]


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
        n_uc = mine.filter(pl.col("cat") == cats[i]).height
        assert raw[r, names["uc_pos_all"]] == pytest.approx(math.log1p(n_uc))
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


def test_new_items_from_index_log_count_but_embed_as_unknown() -> None:
    data, samples = _hand()
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


# --------------------------------------------------------------------------- persistence
def test_state_round_trip_is_identical(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures, tmp_path
) -> None:
    data, samples = sim
    np.savez(tmp_path / "pit.npz", **fitted.state())
    with np.load(tmp_path / "pit.npz", allow_pickle=False) as npz:
        state = {k: npz[k] for k in npz.files}
    reloaded = PointInTimeFeatures.from_state(fitted.config, state)
    _assert_identical(
        fitted.transform(samples, data.interactions), reloaded.transform(samples, data.interactions)
    )
    with pytest.raises(ValueError, match="dense features"):
        PointInTimeFeatures.from_state(PointInTimeConfig(windows_s=(DAY,)), state)


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


# --------------------------------------------------------------------------- prepared log
def test_prepared_log_gives_the_plain_features(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
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
        _assert_identical(fitted.transform(request, prepared.with_extra(extra)), plain)
    # Training-style samples (earlier than parts of the log) match too.
    head = samples.head(500)
    _assert_identical(fitted.transform(head, prepared), fitted.transform(head, log))


def test_prepared_log_falls_back_before_its_start(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    late = data.interactions.filter(pl.col("timestamp") > samples["timestamp"].median())
    early = samples.head(50)
    _assert_identical(fitted.transform(early, fitted.prepare(late)), fitted.transform(early, late))


def test_prepared_log_with_no_samples(
    sim: tuple[Dataset, pl.DataFrame], fitted: PointInTimeFeatures
) -> None:
    data, samples = sim
    empty = samples.head(0)
    out = fitted.transform(empty, fitted.prepare(data.interactions))
    assert out.sparse.shape[0] == 0 and out.dense.shape == (0, fitted.spec.n_dense)
