"""The simulator: canonical schema, determinism and the realism properties benchmarks rely on."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from funnelrec.data.simulator import EVENTS, SimulatedData, SimulatorConfig, SlateMix, simulate
from funnelrec.data.simulator.summary import summarize
from funnelrec.errors import ConfigError
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, check_schema

N_ROWS = 100_000


@pytest.fixture(scope="module")
def config() -> SimulatorConfig:
    return SimulatorConfig.for_interactions(N_ROWS, seed=0)


@pytest.fixture(scope="module")
def data(config: SimulatorConfig) -> SimulatedData:
    return simulate(config)


@pytest.fixture(scope="module")
def clicks(data: SimulatedData) -> pl.DataFrame:
    return data.interactions.filter(pl.col("event") == "click").join(
        data.items.select("item_id", "category"), on="item_id"
    )


# ---------------------------------------------------------------- schema and determinism


def test_tables_pass_schema_with_exact_dtypes(data: SimulatedData) -> None:
    check_schema(data.interactions, INTERACTIONS)
    check_schema(data.items, ITEMS)
    check_schema(data.users, USERS)
    assert data.interactions.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "item_id": pl.Int64,
            "timestamp": pl.Int64,
            "event": pl.String,
            "value": pl.Float32,
            "session_id": pl.Int64,
            "position": pl.Int32,
        }
    )
    assert data.items.schema == pl.Schema(
        {"item_id": pl.Int64, "category": pl.String, "created_at": pl.Int64, "title": pl.String}
    )
    assert data.users.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "age": pl.Int32,
            "gender": pl.String,
            "region": pl.String,
            "signup_at": pl.Int64,
            "tags": pl.String,
        }
    )
    assert data.interactions.null_count().sum_horizontal().item() == 0
    assert data.items.null_count().sum_horizontal().item() == 0
    assert data.users.null_count().sum_horizontal().item() == 0


def test_values_are_canonical(data: SimulatedData, config: SimulatorConfig) -> None:
    inter = data.interactions
    assert set(inter["event"].unique().to_list()) == set(EVENTS)
    assert (inter["value"] == 1.0).all()
    assert inter["position"].min() == 0
    assert inter["position"].max() == config.slate_size - 1
    assert inter["timestamp"].is_sorted()
    assert inter["timestamp"].min() >= config.start_timestamp
    assert inter["timestamp"].max() < config.end_timestamp
    assert data.items["category"].str.contains(r"^c\d{2,}$").all()
    assert data.items["title"].str.split(" ").list.len().min() >= config.title_min_words
    assert inter["item_id"].is_in(data.items["item_id"].implode()).all()
    assert inter["user_id"].is_in(data.users["user_id"].implode()).all()
    assert data.items["item_id"].is_unique().all()
    assert data.users["user_id"].is_unique().all()


def test_row_count_is_near_target(data: SimulatedData) -> None:
    assert abs(data.interactions.height - N_ROWS) / N_ROWS < 0.15


def test_same_seed_same_data_and_other_seed_differs() -> None:
    cfg = SimulatorConfig.for_interactions(20_000, seed=7)
    a, b = simulate(cfg), simulate(cfg)
    assert a.interactions.equals(b.interactions)
    assert a.items.equals(b.items)
    assert a.users.equals(b.users)
    c = simulate(cfg.model_copy(update={"seed": 8}))
    assert not a.interactions.equals(c.interactions)
    assert not a.items.equals(c.items)


def test_no_duplicate_user_item_event_timestamp(data: SimulatedData) -> None:
    keys = data.interactions.select("user_id", "item_id", "event", "timestamp")
    assert keys.is_duplicated().sum() == 0


# ---------------------------------------------------------------- clicks and the funnel


def test_item_popularity_is_power_law(data: SimulatedData, clicks: pl.DataFrame) -> None:
    per_item = np.sort(clicks.group_by("item_id").len()["len"].to_numpy())[::-1]
    top = data.items.height // 100
    share = per_item[:top].sum() / per_item.sum()
    assert share > 0.12  # a uniform catalogue would give ~0.01
    assert summarize(data)["top1pct_click_share"] == pytest.approx(share)


def test_ctr_decreases_with_position(data: SimulatedData) -> None:
    ctr = summarize(data)["ctr_by_position"]
    assert isinstance(ctr, list)
    assert all(a > b for a, b in itertools.pairwise(ctr)), ctr
    assert ctr[0] > 5 * ctr[-1]


def test_funnel_narrows(data: SimulatedData) -> None:
    s = summarize(data)
    assert s["impressions"] > s["clicks"] > s["carts"] > s["orders"] > 0
    assert 0.02 < s["ctr"] < 0.3


@pytest.mark.parametrize("event", ["cart", "order"])
def test_every_cart_and_order_follows_a_click(data: SimulatedData, event: str) -> None:
    inter = data.interactions
    later = inter.filter(pl.col("event") == event).select("user_id", "item_id", "timestamp")
    click = (
        inter.filter(pl.col("event") == "click")
        .select("user_id", "item_id", pl.col("timestamp").alias("click_ts"))
        .sort("click_ts")
    )
    matched = later.sort("timestamp").join_asof(
        click,
        left_on="timestamp",
        right_on="click_ts",
        by=["user_id", "item_id"],
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    assert matched["click_ts"].null_count() == 0


# ---------------------------------------------------------------- time consistency


def test_no_interaction_before_item_creation(data: SimulatedData, config: SimulatorConfig) -> None:
    joined = data.interactions.join(data.items.select("item_id", "created_at"), on="item_id")
    assert (joined["timestamp"] >= joined["created_at"]).all()
    created = data.items["created_at"]
    assert (created < config.start_timestamp).sum() > 0  # some exist from the start
    assert (created >= config.start_timestamp).sum() > 0.3 * data.items.height  # arrivals
    assert created.is_sorted()  # item ids grow with creation time
    # new items are picked up: some clicks land on items created during the span
    clicked_new = joined.filter(
        (pl.col("event") == "click") & (pl.col("created_at") >= config.start_timestamp)
    )
    assert clicked_new.height > 0


def test_no_interaction_before_signup(data: SimulatedData, config: SimulatorConfig) -> None:
    joined = data.interactions.join(data.users.select("user_id", "signup_at"), on="user_id")
    assert (joined["timestamp"] > joined["signup_at"]).all()
    late = data.users.filter(pl.col("signup_at") >= config.start_timestamp)
    assert late.height > 0.2 * data.users.height
    active_late = late.join(data.interactions.select("user_id").unique(), on="user_id")
    assert active_late.height > 0.5 * late.height


def test_cold_users_are_listed_without_rows(data: SimulatedData, config: SimulatorConfig) -> None:
    active = data.interactions["user_id"].unique()
    cold = data.users.filter(~pl.col("user_id").is_in(active.implode()))
    assert cold.height == int(config.n_users * config.cold_user_fraction)


def test_sessions_are_tight_and_far_apart(data: SimulatedData) -> None:
    sess = (
        data.interactions.group_by("session_id")
        .agg(
            pl.col("user_id").n_unique().alias("n_users"),
            pl.first("user_id"),
            pl.col("timestamp").min().alias("start"),
            pl.col("timestamp").max().alias("end"),
            pl.col("timestamp").unique().sort().diff().median().alias("intra"),
        )
        .sort("user_id", "start")
    )
    assert (sess["n_users"] == 1).all()
    inter_gap = sess.select(
        (pl.col("start") - pl.col("end").shift(1)).over("user_id").alias("gap")
    ).drop_nulls()["gap"]
    intra = sess["intra"].drop_nulls()
    assert (inter_gap > 0).all()  # sessions of a user never overlap
    assert inter_gap.median() > 3_600  # hours to days apart
    assert intra.median() < 300  # seconds to minutes within a session
    assert inter_gap.median() > 50 * intra.median()


# ---------------------------------------------------------------- interests and content


def test_consecutive_clicks_in_a_session_share_category(clicks: pl.DataFrame) -> None:
    seq = clicks.sort("session_id", "timestamp").with_columns(
        pl.col("category").shift(1).over("session_id").alias("prev")
    )
    pairs = seq.drop_nulls("prev")
    same = (pairs["category"] == pairs["prev"]).mean()
    share = clicks["category"].value_counts(normalize=True)["proportion"].to_numpy()
    chance = float((share**2).sum())
    assert same > 2 * chance
    assert same > 0.6


def _age_category_tv(clicks: pl.DataFrame) -> float:
    """Mean total-variation distance between each age bucket's click categories and the mean."""
    by_age = (
        clicks.group_by("age", "category")
        .len()
        .with_columns((pl.col("len") / pl.col("len").sum().over("age")).alias("p"))
        .pivot("age", index="category", values="p")
        .fill_null(0.0)
    )
    dist = by_age.drop("category").to_numpy().T  # [ages, categories]
    return float((0.5 * np.abs(dist - dist.mean(axis=0)).sum(axis=1)).mean())


def test_demographics_shift_interests(data: SimulatedData, clicks: pl.DataFrame) -> None:
    users = data.users.select("user_id", "age")
    real = _age_category_tv(clicks.join(users, on="user_id"))
    shuffled_age = users["age"].to_numpy()[np.random.default_rng(0).permutation(users.height)]
    shuffled = users.with_columns(pl.Series("age", shuffled_age))
    baseline = _age_category_tv(clicks.join(shuffled, on="user_id"))
    assert real > 2 * baseline, (real, baseline)


def test_titles_predict_category(data: SimulatedData) -> None:
    words = data.items.select("item_id", "category", pl.col("title").str.split(" ")).explode(
        "title"
    )
    counts = words.group_by("title", "category").len()
    best = counts.sort("len", descending=True).group_by("title").first()
    votes = (
        words.join(best.select("title", pl.col("category").alias("guess")), on="title")
        .group_by("item_id", "category", "guess")
        .len()
        .sort("len", descending=True)
        .group_by("item_id")
        .first()
    )
    accuracy = (votes["category"] == votes["guess"]).mean()
    n_categories = data.items["category"].n_unique()
    assert accuracy > max(0.5, 5 / n_categories)


# ---------------------------------------------------------------- config


def test_config_is_frozen_and_strict() -> None:
    cfg = SimulatorConfig()
    with pytest.raises(ValidationError):
        SimulatorConfig(n_user=10)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SlateMix(related=0, subtopic=0, category=0, interest=0, popular=0, fresh=0)
    with pytest.raises(ValidationError, match="active users"):
        SimulatorConfig(n_users=10_000, target_interactions=5_000)


def test_for_interactions_scales_with_n() -> None:
    small = SimulatorConfig.for_interactions(100_000)
    big = SimulatorConfig.for_interactions(1_000_000, seed=5)
    assert big.seed == 5
    assert big.target_interactions == 1_000_000
    assert 20_000 <= big.n_users <= 30_000
    assert 20_000 <= big.n_items <= 50_000
    assert small.n_users * 5 < big.n_users
    assert SimulatorConfig() == SimulatorConfig.for_interactions(1_000_000)
    with pytest.raises(ConfigError):
        SimulatorConfig.for_interactions(10)


@pytest.mark.parametrize("arrival", ["growing", "daily_batches"])
def test_item_arrival_patterns(arrival: str) -> None:
    cfg = SimulatorConfig.for_interactions(10_000, seed=1).model_copy(
        update={"item_arrival": arrival, "daily_rhythm": False}
    )
    data = simulate(cfg)
    created = data.items["created_at"]
    arrived = created.filter(created >= cfg.start_timestamp)
    assert arrived.max() < cfg.end_timestamp
    if arrival == "daily_batches":
        hours = ((arrived - cfg.start_timestamp) % 86_400) // 3_600
        assert (hours == 6).all()
    else:
        half = cfg.start_timestamp + (cfg.end_timestamp - cfg.start_timestamp) // 2
        assert (arrived >= half).sum() > (arrived < half).sum()
    joined = data.interactions.join(data.items, on="item_id")
    assert (joined["timestamp"] >= joined["created_at"]).all()


def test_onboarding_tags_follow_true_interests() -> None:
    """Users tick their real interests far more often than chance (2 of C categories), and
    the simulated users table carries the tags."""
    from funnelrec.data.simulator.core import onboarding_tags

    config = SimulatorConfig.for_interactions(20_000, seed=3)
    interest = np.random.default_rng(3).dirichlet(np.full(12, 0.2), size=2_000)
    tags = onboarding_tags(config, interest)
    top = interest.argmax(axis=1)
    hit = np.mean([f"c{t:02d}" in row.split("|") for t, row in zip(top, tags, strict=True)])
    assert hit > 0.6 > 2 / 12
    assert tags == onboarding_tags(config, interest)  # deterministic per seed
    users = simulate(config).users
    assert users["tags"].str.split("|").list.len().to_list() == [2] * users.height
