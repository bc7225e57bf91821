import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.pipeline.recommender import Recommender
from funnelrec.recall.base import Queries
from funnelrec.recall.cold_start import (
    DemographicPopular,
    DemographicPopularConfig,
    Onboarding,
    OnboardingConfig,
    _finest_groups,
    _group_key,
    _lookup,
)
from funnelrec.recall.popular import category_top_items, top_per_row
from funnelrec.recall.registry import retriever_from_state
from funnelrec.recall.topk import sparse_topk

RNG = np.random.default_rng(0)

# Groups (gender, age): f/young users 1-3 like "a"; f/old user 4 likes "b" (a group of one);
# m/young users 5, 6 like "c"; m/old users 7, 8 like "d" and user 9 likes "c".
USERS = pl.DataFrame(
    {
        "user_id": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "gender": ["f", "f", "f", "f", "m", "m", "m", "m", "m"],
        "age": [20, 20, 20, 60, 20, 20, 60, 60, 60],
    }
)
LIKES = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c", 6: "c", 7: "d", 8: "d", 9: "c"}
ITEMS = pl.DataFrame({"item_id": ["a", "b", "c", "d", "e"], "category": ["x", "x", "y", "y", "z"]})


def _data() -> Dataset:
    inter = pl.DataFrame(
        {
            "user_id": list(LIKES),
            "item_id": list(LIKES.values()),
            "timestamp": [0] * len(LIKES),
            "event": ["click"] * len(LIKES),
            "value": [1.0] * len(LIKES),
        }
    )
    return Dataset.build(inter, ITEMS, USERS, as_of=1)


def _codes(data: Dataset, rows: list[tuple[str | None, int | None]]) -> np.ndarray:
    users = pl.DataFrame(
        {"gender": [g for g, _ in rows], "age": [a for _, a in rows]},
        schema={"gender": pl.String, "age": pl.Int64},
    )
    return data.user_attr_encoder.encode(users)


def _queries(
    n: int,
    user_attr: np.ndarray | None = None,
    tags: list[list[int]] | None = None,
    history: list[list[int]] | None = None,
) -> Queries:
    history = history or [[] for _ in range(n)]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(h) for h in history], out=ptr[1:])
    flat = np.array([i for h in history for i in h], dtype=np.int32)
    q = Queries(
        np.arange(n, dtype=np.int64),
        np.full(n, -1, dtype=np.int32),
        np.ones(n, dtype=np.int64),
        ptr,
        flat,
        np.zeros(flat.shape[0], dtype=np.int64),
        user_attr,
    )
    if tags is None:
        return q
    tags_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(t) for t in tags], out=tags_ptr[1:])
    tags_idx = np.array([t for row in tags for t in row], dtype=np.int32)
    return dataclasses.replace(q, tags_ptr=tags_ptr, tags_idx=tags_idx)


def _first(data: Dataset, idx: np.ndarray) -> list[str | None]:
    return data.item_vocab.decode(idx[:, 0]).to_list()


def test_demographic_backs_off_to_coarser_groups_then_global() -> None:
    data = _data()
    cfg = DemographicPopularConfig(
        attributes=("gender", "age"), min_group_users=2, shrinkage=0.0, k=4
    )
    model = DemographicPopular(cfg).fit(data, rng=RNG)
    rows = [
        ("f", 20),  # (f, young): 3 users -> a
        ("f", 60),  # (f, old) has 1 user < 2 -> back off to (f) -> a (3 users) beats b (1)
        ("m", 60),  # (m, old): 3 users -> d (2 users) beats c (1)
        ("m", None),  # age unknown -> (m) -> c (3 users) beats d (2)
        (None, 20),  # gender unknown, the first attribute -> global
        ("x", 20),  # gender never seen in training -> global
    ]
    result = model.retrieve(_queries(len(rows), _codes(data, rows)))
    assert _first(data, result.item_idx) == ["a", "a", "d", "c", "a", "a"]
    # Global list: a and c have 3 users each (tie -> smaller index), then d, then b.
    assert data.item_vocab.decode(result.item_idx[4]).to_list() == ["a", "c", "d", "b"]
    assert result.score[0, 0] == 1.0
    # Backoff levels: 0 = global, 1 = (gender), 2 = (gender, age).
    level_ptr = model.state()["level_ptr"]
    level = np.searchsorted(level_ptr, model.group_of(_codes(data, rows), len(rows)), "right") - 1
    assert level.tolist() == [2, 1, 2, 1, 0, 0]


def test_demographic_backoff_order_is_configurable() -> None:
    data = _data()
    cfg = DemographicPopularConfig(
        attributes=("age", "gender"), min_group_users=2, shrinkage=0.0, k=1
    )
    model = DemographicPopular(cfg).fit(data, rng=RNG)
    # (old, f) has one user -> back off to (old): users 4, 7, 8, 9 -> d (2) beats b, c (1).
    result = model.retrieve(_queries(1, _codes(data, [("f", 60)])))
    assert _first(data, result.item_idx) == ["d"]


def test_demographic_shrinkage_leans_small_groups_on_their_parent() -> None:
    data = _data()
    rows = _codes(data, [("f", 60)])  # a group of one user, who liked b
    plain = DemographicPopularConfig(
        attributes=("gender", "age"), min_group_users=1, shrinkage=0.0, k=4
    )
    result = DemographicPopular(plain).fit(data, rng=RNG).retrieve(_queries(1, rows))
    assert data.item_vocab.decode(result.item_idx[0]).to_list() == ["b", None, None, None]
    # Parent (f): a 3, b 1, smoothed with the global list; (f, old) = b 1 + 10 * dist(f).
    shrunk = plain.model_copy(update={"shrinkage": 10.0})
    result = DemographicPopular(shrunk).fit(data, rng=RNG).retrieve(_queries(1, rows))
    assert data.item_vocab.decode(result.item_idx[0]).to_list() == ["a", "b", "c", "d"]


def test_demographic_small_groups_or_no_attributes_give_global_minus_seen() -> None:
    data = _data()
    model = DemographicPopular(DemographicPopularConfig(k=2)).fit(data, rng=RNG)  # all < 20
    a = int(data.item_vocab.encode(pl.Series(["a"]))[0])
    result = model.retrieve(_queries(2, _codes(data, [("f", 20), ("m", 60)]), history=[[a], []]))
    assert data.item_vocab.decode(result.item_idx[0]).to_list() == ["c", "d"]
    assert data.item_vocab.decode(result.item_idx[1]).to_list() == ["a", "c"]
    result = model.retrieve(_queries(2, None, history=[[a], []]))
    assert data.item_vocab.decode(result.item_idx[0]).to_list() == ["c", "d"]
    assert data.item_vocab.decode(result.item_idx[1]).to_list() == ["a", "c"]
    no_users = Dataset.build(data.interactions.drop("user_idx", "item_idx"), as_of=1)
    model = DemographicPopular(DemographicPopularConfig(k=1)).fit(no_users, rng=RNG)
    assert model.retrieve(_queries(1, np.zeros((1, 0), np.int32))).item_idx[0, 0] >= 0


def test_demographic_rejects_unknown_attributes_and_bad_shapes() -> None:
    data = _data()
    with pytest.raises(ConfigError, match="region"):
        DemographicPopular(DemographicPopularConfig(attributes=("region",))).fit(data, rng=RNG)
    model = DemographicPopular(DemographicPopularConfig()).fit(data, rng=RNG)
    with pytest.raises(ValueError, match="user_attr"):
        model.retrieve(_queries(1, np.zeros((1, 5), np.int32)))


def test_onboarding_recalls_popular_items_of_chosen_categories() -> None:
    data = _data()
    model = Onboarding(OnboardingConfig(k=3)).fit(data, rng=RNG)
    cat = {c: int(data.category_vocab.encode(pl.Series([c]))[0]) for c in "xyz"}
    d = int(data.item_vocab.encode(pl.Series(["d"]))[0])
    tags = [[cat["x"]], [cat["y"], cat["y"]], [], [-1], [cat["y"]], [cat["x"], cat["y"]]]
    history = [[], [], [], [], [d], []]
    result = model.retrieve(_queries(len(tags), tags=tags, history=history))
    decoded = [data.item_vocab.decode(r[r >= 0]).to_list() for r in result.item_idx]
    assert decoded[0] == ["a", "b"]  # category x by popularity
    assert decoded[1] == ["c", "d"]  # a repeated tag counts once
    assert decoded[2] == [] and decoded[3] == []  # no tags / unknown tag: padding
    assert decoded[4] == ["c"]  # seen item excluded
    assert decoded[5] == ["a", "c", "d"]  # each category's best is 1 before weighting
    # A batch without tags at all: every row is padding.
    assert (model.retrieve(_queries(2)).item_idx == -1).all()


def test_onboarding_needs_categories() -> None:
    data = _data()
    no_items = Dataset.build(data.interactions.drop("user_idx", "item_idx"), as_of=1)
    with pytest.raises(ConfigError, match="category"):
        Onboarding(OnboardingConfig()).fit(no_items, rng=RNG)


@pytest.mark.parametrize(
    "config",
    [
        DemographicPopularConfig(attributes=("gender", "age"), min_group_users=2, k=3),
        DemographicPopularConfig(min_group_users=1, shrinkage=0.0, k=3),
        OnboardingConfig(k=3),
    ],
)
def test_state_round_trip_gives_identical_output(tmp_path: Path, config: object) -> None:
    data = _data()
    model = (
        DemographicPopular(config)
        if isinstance(config, DemographicPopularConfig)
        else Onboarding(config)  # type: ignore[arg-type]
    ).fit(data, rng=RNG)
    np.savez(tmp_path / "state.npz", **model.state())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as npz:
        restored = retriever_from_state(config, {key: npz[key] for key in npz.files})  # type: ignore[arg-type]
    rows = [("f", 20), ("f", 60), ("m", None), (None, None)]
    q = _queries(4, _codes(data, rows), tags=[[0], [1, 2], [], [2]])
    a, b = model.retrieve(q), restored.retrieve(q)
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)


def test_top_per_row_keeps_best_and_normalises() -> None:
    m = sp.csr_matrix(np.array([[0.0, 2.0, 4.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 0.0, 1.0]]))
    out = top_per_row(m, 2).toarray()
    assert out.tolist() == [[0.0, 0.5, 1.0, 0.0], [0.0] * 4, [1.0, 1.0, 0.0, 0.0]]


def test_recommender_serves_new_users_from_attributes_and_tags() -> None:
    data = _data()
    config = ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {
                    "demographic": {
                        "kind": "demographic",
                        "min_group_users": 2,
                        "shrinkage": 0.0,
                        "k": 1,
                    },
                    "onboarding": {"kind": "onboarding", "k": 1},
                },
                "merge": {"k": 2, "quotas": {"onboarding": 1, "demographic": 1}},
            },
            # The merged candidates are the point; a toy log has no ranking samples.
            "rank": {"enabled": False},
        }
    )
    recommender = Recommender.fit(data, config, rng=RNG)
    queries = recommender.queries(
        pl.Series(["new1", "new2"]),
        1,
        attributes=pl.DataFrame({"gender": ["m", "f"], "age": [61, 20]}),
        tags=[["x"], []],
    )
    ranked = recommender.run(queries, k=2).ranked
    by_query = ranked.group_by("query_id", maintain_order=True).agg("item_id", "source")
    assert by_query["item_id"].to_list() == [["a", "d"], ["a"]]
    assert by_query["source"].to_list() == [["onboarding", "demographic"], ["demographic"]]


def _random_data(seed: int) -> Dataset:
    """A log of 60 users with (gender, age, region) attributes over 80 items in 7 categories."""
    rng = np.random.default_rng(seed)
    n = 1500
    users = pl.DataFrame(
        {
            "user_id": np.arange(60),
            "gender": rng.choice(["f", "m"], 60),
            "age": rng.choice([20, 40, 60], 60),
            "region": rng.choice(["n", "s", "e"], 60),
        }
    )
    items = pl.DataFrame({"item_id": np.arange(80), "category": [f"c{i % 7}" for i in range(80)]})
    inter = pl.DataFrame(
        {
            "user_id": rng.integers(0, 60, n),
            "item_id": (rng.zipf(1.3, n) % 80).astype(np.int64),
            "timestamp": rng.integers(0, 30 * 86_400, n),
            "event": ["click"] * n,
            "value": [1.0] * n,
        }
    )
    return Dataset.build(inter, items, users, as_of=30 * 86_400)


def _scipy_topk(scores: sp.csr_matrix, q: Queries, k: int, exclude_seen: bool):
    if exclude_seen:
        return sparse_topk(scores, k, q.history_ptr, q.history_item)
    return sparse_topk(scores, k)


@pytest.mark.parametrize("b", [1, 2, 300])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_demographic_equals_the_scipy_rows_of_its_group_lists(
    make_random_queries: Callable[..., Queries], b: int, exclude_seen: bool
) -> None:
    data = _random_data(b)
    cfg = DemographicPopularConfig(min_group_users=3, per_group=12, exclude_seen=exclude_seen)
    model = DemographicPopular(cfg).fit(data, rng=RNG)
    rng = np.random.default_rng(b)
    attr = rng.integers(0, 4, (b, data.user_attr.shape[1])).astype(np.int32)
    q = make_random_queries(rng, b, data.n_items, user_attr=attr)
    state = model.state()
    top = sp.csr_matrix(
        (state["top_data"], state["top_indices"], state["top_indptr"]),
        shape=(int(state["level_ptr"][-1]), data.n_items),
    )
    rows = model.group_of(q.user_attr, b)
    for k in (1, 12, 40):
        got = model.retrieve(q, k)
        want_idx, want_score = _scipy_topk(top[rows], q, k, exclude_seen)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        np.testing.assert_array_equal(got.score, want_score)


@pytest.mark.parametrize("b", [1, 2, 300])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_onboarding_equals_the_scipy_tag_product(
    make_random_queries: Callable[..., Queries], b: int, exclude_seen: bool
) -> None:
    data = _random_data(b)
    model = Onboarding(OnboardingConfig(per_category=9, exclude_seen=exclude_seen))
    model = model.fit(data, rng=RNG)
    rng = np.random.default_rng(b)
    q = make_random_queries(rng, b, data.n_items, n_categories=model.n_categories)
    assert q.tags_ptr is not None and q.tags_idx is not None
    rows = np.repeat(np.arange(b), np.diff(q.tags_ptr))
    tags = q.tags_idx.astype(np.int64)
    valid = (tags >= 0) & (tags < model.n_categories)
    top = category_top_items(model.item_category, model.item_score, model.n_categories, 9)
    pref = sp.csr_matrix(
        (np.ones(int(valid.sum())), (rows[valid], tags[valid])), shape=(b, top.shape[0])
    )
    pref.data[:] = 1.0
    pref = sp.diags(1.0 / np.maximum(np.diff(pref.indptr), 1)) @ pref
    for k in (1, 9, 40):
        got = model.retrieve(q, k)
        want_idx, want_score = _scipy_topk(sp.csr_matrix(pref @ top), q, k, exclude_seen)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        np.testing.assert_array_equal(got.score, want_score)


def _numpy_finest_groups(codes, level_ptr, group_key, radix):
    """The former NumPy lookup (the reference): one vectorised pass per level."""
    chosen = np.full(codes.shape[0], level_ptr[0], dtype=np.int64)
    done = np.zeros(codes.shape[0], dtype=bool)
    for level in range(level_ptr.shape[0] - 2, 0, -1):
        keys = group_key[level_ptr[level] : level_ptr[level + 1]]
        j, found = _lookup(keys, _group_key(codes[:, :level], radix))
        found &= ~done & (codes[:, :level] > 0).all(axis=1)
        chosen[found] = level_ptr[level] + j[found]
        done |= found
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_finest_groups_equals_the_numpy_lookup(seed: int) -> None:
    rng = np.random.default_rng(seed)
    card = np.array([4, 3, 5], dtype=np.int64)
    radix = np.concatenate([[1], np.cumprod(card)[:-1]]).astype(np.int64)
    level_ptr, keys = [0, 1], [np.zeros(1, np.int64)]
    for level in range(1, 4):  # a random subset of each level's groups is stored
        codes = rng.integers(1, card[:level] + 1, size=(30, level))  # some codes past card
        level_keys = np.unique(_group_key(codes, radix))
        if seed == 0 and level == 2:
            level_keys = level_keys[:0]  # an empty level
        keys.append(level_keys)
        level_ptr.append(level_ptr[-1] + level_keys.shape[0])
    group_key, ptr = np.concatenate(keys), np.array(level_ptr, dtype=np.int64)
    query = rng.integers(0, card + 1, size=(200, 3)).astype(np.int64)
    got = np.full(200, ptr[0], dtype=np.int64)
    _finest_groups(query, ptr, group_key, radix, got)
    np.testing.assert_array_equal(got, _numpy_finest_groups(query, ptr, group_key, radix))
