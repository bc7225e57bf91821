"""A failing or slow recall channel is dropped for the request (counted in /metrics), a
failing ranker falls back to the merge order, nothing retrieved falls back to popular items;
never a 5xx. The replay reproduces degraded requests too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from funnelrec.serve.app import create_app
from funnelrec.serve.consistency import replay_feature_log


class Broken:
    """Delegates to a channel or ranker but raises (or sleeps) where it is called."""

    def __init__(self, inner: Any, method: str, sleep_s: float = 0.0) -> None:
        self._inner, self._method, self._sleep_s = inner, method, sleep_s

    def __getattr__(self, name: str) -> Any:
        if name != self._method:
            return getattr(self._inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._sleep_s:
                time.sleep(self._sleep_s)
                return getattr(self._inner, name)(*args, **kwargs)
            raise RuntimeError(f"{name} is broken")

        return call


def _user(service) -> str:
    return str(service.model.recommender.user_vocab.ids[0])


def _replay_ok(service, tiny_artifacts: Path) -> None:
    service.feature_log.flush()
    report = replay_feature_log(tiny_artifacts, service.settings.feature_log_path)
    assert report.replayed > 0 and report.ok, [m.describe() for m in report.mismatches[:5]]


def test_failing_channel_is_dropped(make_service, tiny_artifacts: Path) -> None:
    service = make_service()
    channels = service.model.recommender.channels
    channels["itemcf"] = Broken(channels["itemcf"], "retrieve")
    with TestClient(create_app(service.settings, service)) as client:
        r = client.post("/v1/recommend", json={"user_id": _user(service), "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["degraded"] == ["recall.itemcf"]
        assert len(body["items"]) == 10
        assert "itemcf" not in {i["source"] for i in body["items"]}
        text = client.get("/metrics").text
        assert 'funnelrec_degraded_total{reason="error",stage="recall.itemcf"} 1.0' in text
    _replay_ok(service, tiny_artifacts)


def test_channel_over_budget_is_dropped(make_service, tiny_artifacts: Path) -> None:
    from funnelrec.serve.settings import Budgets

    service = make_service(budgets=Budgets(channels_ms={"two_tower": 20}))
    channels = service.model.recommender.channels
    channels["two_tower"] = Broken(channels["two_tower"], "retrieve", sleep_s=0.05)
    body = service.recommend(_user(service), 10)
    assert body["degraded"] == ["recall.two_tower"]
    assert len(body["items"]) == 10
    assert service.metrics.degraded.labels("recall.two_tower", "timeout")._value.get() == 1
    _replay_ok(service, tiny_artifacts)


def test_failing_ranker_serves_the_merge_order(make_service, tiny_artifacts: Path) -> None:
    service = make_service()
    rec = service.model.recommender
    rec.ranker = Broken(rec.ranker, "score")  # type: ignore[assignment]
    body = service.recommend(_user(service), 10)
    assert body["degraded"] == ["rank"]
    # Without the rank stage the list the re-ranker reorders is the merge order.
    assert all(i["pre_rerank_rank"] in (None, i["merged_rank"]) for i in body["items"])
    assert all(not any(i["probabilities"].values()) for i in body["items"])
    _replay_ok(service, tiny_artifacts)


def test_nothing_retrieved_falls_back_to_popular(make_service, tiny_artifacts: Path) -> None:
    service = make_service()
    channels = service.model.recommender.channels
    for name in list(channels):
        channels[name] = Broken(channels[name], "retrieve")
    with TestClient(create_app(service.settings, service)) as client:
        r = client.post("/v1/recommend", json={"user_id": _user(service), "k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
    assert "fallback_popular" in body["degraded"]
    assert len(body["items"]) == 5
    assert {i["source"] for i in body["items"]} == {"fallback_popular"}
    _replay_ok(service, tiny_artifacts)
