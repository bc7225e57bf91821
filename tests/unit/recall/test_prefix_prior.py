"""The content channel's code-prefix prior: inheritance by new items, ranking effect, CTR,
state round trip, and errors."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.errors import MissingInputError
from funnelrec.features.text import TextEncoderConfig
from funnelrec.recall.base import Queries
from funnelrec.recall.content import Content
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.prefix_prior import PrefixPrior, PrefixPriorConfig
from funnelrec.recall.registry import retriever_from_state

# Two topics with three items each; "space" items are popular, "soup" items are not.
TITLES = [
    "space war", "space war again", "space war returns",
    "soup tomato", "soup tomato hot", "soup tomato cold",
    "space soup",  # item 6: the reader's history, half way between the topics
]  # fmt: skip
PRIOR = PrefixPriorConfig(
    ids={"kind": "rq_kmeans", "levels": 2, "codebook_size": 2},
    min_support=2,
    weight=1.0,
    half_life_s=1e9,
)
CFG = ContentConfig(
    k=3, pool="all", encoder=TextEncoderConfig(kind="hashing", dim=8), prefix_prior=PRIOR
)


def _data(events: list[str] | None = None) -> Dataset:
    # Users 10..15 clicked space items 0-2 (twice each); user 1 read item 6 only.
    users = [10, 11, 12, 13, 14, 15, 1]
    items = [0, 1, 2, 0, 1, 2, 6]
    inter = pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "timestamp": [1] * 7,
            "event": events or ["click"] * 7,
            "value": [1.0] * 7,
        }
    )
    table = pl.DataFrame({"item_id": np.arange(7), "title": TITLES})
    return Dataset.build(inter, table, as_of=10)


def _queries(data: Dataset, user: int) -> Queries:
    idx = data.user_vocab.encode(pl.Series([user]))
    return Queries.from_history(np.arange(1), idx, np.array([data.as_of]), data.positives)


def test_new_items_inherit_their_prefix_and_popular_topics_rank_first() -> None:
    data = _data()
    model = Content(CFG).fit(data, rng=np.random.default_rng(0))
    prior = model._prior
    assert prior is not None
    lift = prior.lift(np.arange(7))
    assert lift[:3].min() > 0 > lift[3:6].max()  # popular topic above the global rate
    n = data.n_items
    new = pl.DataFrame({"item_id": [100, 101], "title": ["space war new", "soup tomato new"]})
    model.add_items(new, np.array([n, n + 1], dtype=np.int32))
    new_lift = prior.lift(np.array([n, n + 1]))
    assert new_lift[0] > 0 > new_lift[1]
    assert prior.codes[n, 0] == prior.codes[0, 0] != prior.codes[n + 1, 0]
    plain = Content(CFG.model_copy(update={"prefix_prior": None})).fit(
        data, rng=np.random.default_rng(0)
    )
    plain.add_items(new, np.array([n, n + 1], dtype=np.int32))
    with_prior = model.retrieve(_queries(data, 1), k=8).item_idx[0]
    without = plain.retrieve(_queries(data, 1), k=8).item_idx[0]
    assert set(with_prior) == set(without)  # the prior re-orders, it adds nothing
    top3 = set(with_prior[:3].tolist())
    assert top3 <= {0, 1, 2, n}  # the popular topic's items, the new one included


def test_ctr_statistic_needs_impressions() -> None:
    clicks_only = _data()
    cfg = CFG.model_copy(update={"prefix_prior": PRIOR.model_copy(update={"statistic": "ctr"})})
    with pytest.raises(MissingInputError, match="impression"):
        Content(cfg).fit(clicks_only, rng=np.random.default_rng(0))
    events = ["impression", "click", "impression", "click", "impression", "impression", "click"]
    model = Content(cfg).fit(_data(events), rng=np.random.default_rng(0))
    assert model._prior is not None and np.isfinite(model._prior.lift(np.arange(7))).all()


@pytest.mark.parametrize("ids", [{"kind": "rq_kmeans", "levels": 2}, {"kind": "hierarchical"}])
def test_state_round_trip_gives_identical_output(ids: dict) -> None:
    data = _data()
    prior = PrefixPriorConfig.model_validate(PRIOR.model_dump() | {"ids": ids})
    cfg = CFG.model_copy(update={"prefix_prior": prior})
    model = Content(cfg).fit(data, rng=np.random.default_rng(0))
    n = data.n_items
    model.add_items(pl.DataFrame({"item_id": [100], "title": ["space war"]}), np.array([n]))
    restored = retriever_from_state(cfg, model.state())
    a, b = model.retrieve(_queries(data, 1)), restored.retrieve(_queries(data, 1))
    assert np.array_equal(a.item_idx, b.item_idx) and np.array_equal(a.score, b.score)


def test_rescore_sums_repeated_hits_then_adds_the_prior_once() -> None:
    data = _data()
    prior = PrefixPrior(PRIOR).fit(data, np.eye(7, dtype=np.float32), np.ones(7, dtype=bool))
    rows = np.array([0, 0, 1])
    items = np.array([3, 3, 3])
    out_rows, out_items, scores = prior.rescore(rows, items, np.array([0.25, 0.5, 0.25]))
    lift = prior.lift(np.array([3]))[0]
    assert out_rows.tolist() == [0, 1] and out_items.tolist() == [3, 3]
    assert scores.tolist() == pytest.approx([0.75 + lift, 0.25 + lift])


def test_errors() -> None:
    data = _data()
    with pytest.raises(MissingInputError, match="no item"):
        PrefixPrior(PRIOR).fit(data, np.zeros((7, 2), np.float32), np.zeros(7, dtype=bool))
    with pytest.raises(RuntimeError, match="not fitted"):
        PrefixPrior(PRIOR).add_items(np.ones((1, 2), np.float32), np.array([7]))
    with pytest.raises(ValueError, match="Extra inputs"):
        PrefixPriorConfig(wieght=1.0)  # type: ignore[call-arg]
