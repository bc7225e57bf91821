import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from funnelrec.config.experiment import ExperimentConfig
from funnelrec.data.dataset import Dataset
from funnelrec.errors import ConfigError
from funnelrec.features.text import TextEncoderConfig
from funnelrec.index import AutoIndexConfig, HNSWIndexConfig
from funnelrec.index.base import decode_text
from funnelrec.pipeline.recommender import Recommender
from funnelrec.recall.base import Queries
from funnelrec.recall.content import Content
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.history import recent_items
from funnelrec.recall.registry import build_retriever, retriever_from_state
from funnelrec.recall.topk import sparse_topk

TOPICS = {
    "space": ["space war", "space station", "starship in space", "stars and space", "alien war"],
    "food": ["tomato soup", "pasta with tomato", "bread baking", "soup and bread", "pasta bake"],
    "sport": ["football final", "football transfer", "tennis final", "tennis open", "golf open"],
}
CFG = ContentConfig(k=5, encoder=TextEncoderConfig(kind="hashing", dim=16))


def _items() -> pl.DataFrame:
    titles = [t for topic in TOPICS.values() for t in topic]
    cats = [c for c, topic in TOPICS.items() for _ in topic]
    return pl.DataFrame(
        {"item_id": np.arange(len(titles), dtype=np.int64), "title": titles, "category": cats}
    )


def _data() -> Dataset:
    # user 1 read space items 0, 1; user 2 read food items 5, 6; user 3 read an item without a
    # row in the items table (id 99).
    inter = pl.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 3],
            "item_id": [0, 1, 5, 6, 99],
            "timestamp": [10, 20, 10, 20, 10],
            "event": ["click"] * 5,
            "value": [1.0] * 5,
        }
    )
    return Dataset.build(inter, _items(), as_of=100)


def _queries(data: Dataset, users: list[int]) -> Queries:
    idx = data.user_vocab.encode(pl.Series(users))
    return Queries.from_history(
        np.arange(len(users)), idx, np.full(len(users), data.as_of), data.positives
    )


def _ids(data: Dataset, idx: np.ndarray) -> list[int]:
    return data.item_vocab.decode(idx[idx >= 0]).to_list()


@pytest.fixture
def fitted() -> tuple[Content, Dataset]:
    data = _data()
    return Content(CFG).fit(data, rng=np.random.default_rng(0)), data


def test_retrieves_same_topic_and_excludes_seen(fitted: tuple[Content, Dataset]) -> None:
    model, data = fitted
    result = model.retrieve(_queries(data, [1, 2]))
    assert result.channel == "content"
    space = _ids(data, result.item_idx[0, :3])
    food = _ids(data, result.item_idx[1, :3])
    assert set(space) <= {2, 3, 4} and set(food) <= {7, 8, 9}
    assert not {0, 1} & set(_ids(data, result.item_idx[0]))
    assert np.all(np.diff(result.score[0][result.item_idx[0] >= 0]) <= 0)


def test_empty_history_unknown_user_and_textless_items_give_padding(
    fitted: tuple[Content, Dataset],
) -> None:
    model, data = fitted
    result = model.retrieve(_queries(data, [12345, 3]))
    assert (result.item_idx == -1).all() and np.isneginf(result.score).all()
    assert not model.item_embeddings[data.item_vocab.encode(pl.Series([99]))[0]].any()


def test_new_item_is_recalled_for_a_user_of_its_topic(fitted: tuple[Content, Dataset]) -> None:
    model, data = fitted
    new = pl.DataFrame({"item_id": [500, 501], "title": ["war in space", "soup of tomato"]})
    new_idx = np.array([data.n_items, data.n_items + 1], dtype=np.int32)
    model.add_items(new, new_idx)
    result = model.retrieve(_queries(data, [1, 2]), k=3)
    assert new_idx[0] in result.item_idx[0] and new_idx[1] not in result.item_idx[0]
    assert new_idx[1] in result.item_idx[1] and new_idx[0] not in result.item_idx[1]
    with pytest.raises(ValueError, match="already known"):
        model.add_items(new.head(1), new_idx[:1])


def test_sum_aggregate_also_follows_the_topic() -> None:
    data = _data()
    cfg = CFG.model_copy(update={"aggregate": "sum"})
    result = Content(cfg).fit(data, rng=np.random.default_rng(0)).retrieve(_queries(data, [1]))
    assert set(_ids(data, result.item_idx[0, :3])) <= {2, 3, 4}


def test_recency_weights_favour_the_latest_item() -> None:
    # One user read food first, then space: the newest (space) dominates the query vector.
    inter = pl.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [5, 0],
            "timestamp": [10, 20],
            "event": ["click"] * 2,
            "value": [1.0] * 2,
        }
    )
    data = Dataset.build(inter, _items(), as_of=100)
    cfg = CFG.model_copy(update={"recency_decay": 0.2})
    result = Content(cfg).fit(data, rng=np.random.default_rng(0)).retrieve(_queries(data, [1]))
    assert _ids(data, result.item_idx[0, :1])[0] in {1, 2, 3, 4}


@pytest.mark.parametrize("aggregate", ["mean", "sum"])
def test_state_round_trip_gives_identical_output(
    tmp_path: Path, fitted: tuple[Content, Dataset], aggregate: str
) -> None:
    model, data = fitted
    model.config = model.config.model_copy(update={"aggregate": aggregate})
    n = data.n_items
    model.add_items(pl.DataFrame({"item_id": [500], "title": ["space war"]}), np.array([n]))
    np.savez(tmp_path / "content.npz", **model.state())
    with np.load(tmp_path / "content.npz", allow_pickle=False) as npz:
        state = {key: npz[key] for key in npz.files}
    restored = retriever_from_state(model.config, state)
    queries = _queries(data, [1, 2, 3, 777])
    a, b = model.retrieve(queries), restored.retrieve(queries)
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.score, b.score)
    # The restored encoder embeds later items exactly like the original.
    new = pl.DataFrame({"item_id": [600], "title": ["pasta soup"]})
    model.add_items(new, np.array([n + 1]))
    restored.add_items(new, np.array([n + 1]))
    np.testing.assert_array_equal(model.item_embeddings, restored.item_embeddings)


def test_hnsw_index_matches_exact_on_a_small_catalogue() -> None:
    data = _data()
    exact = Content(CFG).fit(data, rng=np.random.default_rng(0))
    cfg = CFG.model_copy(update={"index": HNSWIndexConfig()})
    hnsw = build_retriever(cfg).fit(data, rng=np.random.default_rng(0))
    a, b = exact.retrieve(_queries(data, [1, 2])), hnsw.retrieve(_queries(data, [1, 2]))
    np.testing.assert_allclose(a.score, b.score, atol=1e-5)  # equal up to the order of ties
    np.testing.assert_array_equal(a.item_idx[:, :3], b.item_idx[:, :3])


def test_an_auto_index_searches_exactly_up_to_its_size_and_approximately_above() -> None:
    data = _data()
    exact = Content(CFG).fit(data, rng=np.random.default_rng(0))
    assert _index_kind(exact.state()) == "exact"
    small = AutoIndexConfig(exact_up_to=5)
    approx = Content(CFG.model_copy(update={"index": small}))
    approx.fit(data, rng=np.random.default_rng(0))
    state = approx.state()
    assert _index_kind(state) == "ivf"
    queries = _queries(data, [1, 2])
    a, b = exact.retrieve(queries), approx.retrieve(queries)
    np.testing.assert_allclose(a.score, b.score, atol=1e-5)
    np.testing.assert_array_equal(a.item_idx[:, :3], b.item_idx[:, :3])
    restored = retriever_from_state(approx.config, state)  # the kind chosen at fit comes back
    np.testing.assert_array_equal(restored.retrieve(queries).item_idx, b.item_idx)


def _index_kind(state: dict[str, np.ndarray]) -> str:
    kind: str = json.loads(decode_text(state["index.config"]))["kind"]
    return kind


def test_needs_items_with_text() -> None:
    data = _data()
    no_items = Dataset.build(data.interactions.drop("user_idx", "item_idx"), as_of=100)
    with pytest.raises(ConfigError, match="items table"):
        Content(CFG).fit(no_items, rng=np.random.default_rng(0))


def test_recommender_ingests_new_items_into_the_content_channel() -> None:
    data = _data()
    config = ExperimentConfig.model_validate(
        {
            "recall": {
                "channels": {"content": CFG.model_dump(), "popular": {"kind": "popular"}},
                "merge": {"k": 10, "quotas": {"content": 5, "popular": 5}},
            },
            # The merged candidates are the point; a 15-item log has no ranking samples.
            "rank": {"enabled": False},
        }
    )
    recommender = Recommender.fit(data, config, rng=np.random.default_rng(0))
    recommender.ingest_items(pl.DataFrame({"item_id": [900], "title": ["space war returns"]}))
    ranked = recommender.run(recommender.queries(pl.Series([1]), 100), k=10).ranked
    assert 900 in ranked["item_id"].to_list()


def test_fresh_pool_recalls_only_recent_and_ingested_items() -> None:
    day = 86_400
    data = _data()
    # Items 2 and 3 (space) were created a day before as_of; every other item a year earlier.
    created = np.where(np.isin(np.arange(15), [2, 3]), 100 * day - day, 0)
    items = _items().with_columns(pl.Series("created_at", created, dtype=pl.Int64))
    data = Dataset.build(data.interactions.drop("user_idx", "item_idx"), items, as_of=100 * day)
    cfg = CFG.model_copy(update={"pool": "fresh", "fresh_age_s": 7.0 * day})
    model = Content(cfg).fit(data, rng=np.random.default_rng(0))
    queries = _queries(data, [1, 2])
    result = model.retrieve(queries)
    assert set(_ids(data, result.item_idx[0])) == {2, 3}
    assert set(_ids(data, result.item_idx[1])) <= {2, 3}
    new = pl.DataFrame({"item_id": [500], "title": ["soup of tomato"]})  # no created_at
    model.add_items(new, np.array([data.n_items], dtype=np.int32))
    assert model.retrieve(queries).item_idx[1, 0] == data.n_items
    # Ten days later items 2 and 3 have aged out; the ingested item (as_of) too.
    later = dataclasses.replace(queries, timestamp=queries.timestamp + 10 * day)
    assert (model.retrieve(later).item_idx == -1).all()
    restored = retriever_from_state(cfg, model.state())
    np.testing.assert_array_equal(
        restored.retrieve(queries).item_idx, model.retrieve(queries).item_idx
    )


def test_auto_pool_follows_the_items_columns() -> None:
    """Items without created_at: every item is a candidate (the channel is not skipped);
    with created_at: only fresh items, as the funnel's new-item path wants."""
    data = _data()  # its items table has no created_at
    auto = CFG.model_copy(update={"pool": "auto"})
    channel = Content(auto).fit(data)
    assert channel.pool == "all"
    assert (channel.retrieve(_queries(data, [1])).item_idx >= 0).any()
    assert Content.from_state(auto, channel.state()).pool == "all"
    assert data.items is not None
    dated_items = data.items.drop("item_idx").with_columns(pl.lit(50).alias("created_at"))
    dated = Dataset.build(data.interactions.drop("user_idx", "item_idx"), dated_items, as_of=100)
    assert Content(auto).fit(dated).pool == "fresh"


def _scipy_retrieve(model: Content, q: Queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The channel as it was written with scipy.sparse matrices (the reference)."""
    cfg, emb, b = model.config, model.item_embeddings, len(q)
    usable = np.abs(emb).sum(axis=1) > 0
    recent = recent_items(q, cfg.history_len, usable)
    rows, item = recent.row, recent.item
    weight = np.power(cfg.recency_decay, recent.rank.astype(np.float64))
    seen_rows = recent_items(q, 10**9, usable).row
    extra = np.bincount(seen_rows, minlength=b).astype(np.int64)
    if not cfg.exclude_seen:
        extra = np.zeros(b, np.int64)
    limit = len(model._fitted()[1])
    if cfg.aggregate == "mean":
        hist = sp.csr_matrix((weight.astype(np.float32), (rows, item)), shape=(b, emb.shape[0]))
        qvec = np.asarray(hist @ emb, dtype=np.float32)
        live = np.flatnonzero(np.bincount(rows, minlength=b) > 0)
        out_rows, out_item, out_score = model._search(qvec[live], live, extra[live], k, limit)
    else:
        hit_pos, out_item, sim = model._search(
            emb[item], np.arange(item.shape[0]), extra[rows], k, limit
        )
        total = np.bincount(rows, weights=weight, minlength=b)
        out_rows = rows[hit_pos]
        out_score = sim * weight[hit_pos] / total[out_rows]
    if model.pool == "fresh":
        fresh = model._created[out_item] >= q.timestamp[out_rows] - cfg.fresh_age_s
        out_rows, out_item, out_score = out_rows[fresh], out_item[fresh], out_score[fresh]
    scores = sp.csr_matrix((out_score, (out_rows, out_item)), shape=(b, max(emb.shape[0], 1)))
    if cfg.exclude_seen:
        return sparse_topk(scores, k, q.history_ptr, q.history_item)
    return sparse_topk(scores, k)


@pytest.mark.parametrize("b", [1, 2, 200])
@pytest.mark.parametrize("aggregate", ["mean", "sum"])
@pytest.mark.parametrize("pool", ["all", "fresh"])
def test_retrieve_equals_the_scipy_implementation(
    make_random_queries: Callable[..., Queries], b: int, aggregate: str, pool: str
) -> None:
    rng = np.random.default_rng(b)
    created = rng.integers(10**9 - 20 * 86_400, 10**9, 15)  # some older than fresh_age_s
    items = _items().with_columns(pl.Series("created_at", created, dtype=pl.Int64))
    data = Dataset.build(_data().interactions.drop("user_idx", "item_idx"), items, as_of=10**9)
    cfg = CFG.model_copy(update={"aggregate": aggregate, "pool": pool, "history_len": 4})
    model = Content(cfg).fit(data)
    q = make_random_queries(rng, b, data.n_items)
    for k in (1, 5, 40):
        got = model.retrieve(q, k)
        want_idx, want_score = _scipy_retrieve(model, q, k)
        np.testing.assert_array_equal(got.item_idx, want_idx)
        if aggregate == "mean":  # one term per item: the same bits
            np.testing.assert_array_equal(got.score, want_score)
        else:  # repeated hits summed in another order: equal up to float rounding
            np.testing.assert_allclose(got.score, want_score, rtol=1e-6, atol=1e-7)
