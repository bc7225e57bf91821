"""The event store is the served behaviour store: a posted event is the next request's most
recent behaviour in the ranker's sequence features (what a long-sequence ranker attends over)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from funnelrec.features.spec import RankFeatures


def test_a_posted_event_is_the_next_requests_most_recent_behaviour(
    make_service: Any, monkeypatch: Any
) -> None:
    service = make_service()
    recommender = service.model.recommender
    ranker = recommender.ranker
    seen: list[RankFeatures] = []
    transform = ranker.features.transform

    def spy(samples: pl.DataFrame, log: Any) -> RankFeatures:
        features = transform(samples, log)
        seen.append(features)
        return features

    monkeypatch.setattr(ranker.features, "transform", spy)
    user = str(recommender.user_vocab.ids[2])
    first = service.recommend(user, 5, timestamp=service.now())
    assert seen, "the ranker scored the warm user's candidates"
    item = first["items"][-1]["item_id"]  # a candidate, not yet in the user's history
    before = seen[-1].seq_item[:, 0]
    now = service.now()
    service.post_events([{"user_id": user, "item_id": item, "event": "click", "timestamp": now}])
    # Features read the events strictly before the request time (point in time).
    second = service.recommend(user, 5, timestamp=now + 1)
    assert second["history_len"] == first["history_len"] + 1
    index = int(recommender.item_vocab.encode(pl.Series([item]))[0])
    latest = seen[-1]
    assert len(latest) > 0 and np.all(latest.seq_item[:, 0] == index + 1)  # item ids are index + 1
    assert not np.all(before == index + 1)
    # The earlier behaviours moved one slot back.
    assert np.all(latest.seq_item[:, 1] == before[0])
