"""A request's scenario reaches the ranker's samples, is logged, and replays the same."""

from __future__ import annotations

import json

import polars as pl

from funnelrec.serve.consistency import replay_feature_log


def test_the_scenario_reaches_the_ranker_and_the_feature_log(make_service, tiny_artifacts) -> None:
    service = make_service()
    ranker = service.model.recommender.ranker
    seen: list[pl.DataFrame] = []
    score = ranker.score

    def spy(samples: pl.DataFrame, log: object) -> pl.DataFrame:
        seen.append(samples)
        return score(samples, log)

    ranker.score = spy
    try:
        user = service.model.recommender.user_vocab.ids[0]
        plain = service.recommend(user, 10)
        detail = service.recommend(user, 10, scenario="detail")
    finally:
        del ranker.score
    assert "scenario" not in seen[0].columns
    assert seen[1]["scenario"].unique().to_list() == ["detail"]
    # this artifact's DeepFM has no scenario field: the same list either way
    assert [i["item_id"] for i in plain["items"]] == [i["item_id"] for i in detail["items"]]
    service.feature_log.flush()
    records = [json.loads(line) for line in service.feature_log.path.read_text().splitlines()]
    assert [r["scenario"] for r in records[-2:]] == [None, "detail"]
    report = replay_feature_log(tiny_artifacts, service.settings.feature_log_path)
    assert report.ok and report.replayed >= 2, report
