"""Bad input gets a clear 4xx JSON message; events are validated before anything is stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from funnelrec.serve.app import create_app
from funnelrec.serve.schemas import RecommendedItem, RecommendResponse


@pytest.fixture(scope="module")
def api(make_service) -> Iterator[tuple[TestClient, object]]:
    service = make_service(max_body_bytes=4096, max_events_per_post=5)
    with TestClient(create_app(service.settings, service)) as client:
        yield client, service


def _post_json(client: TestClient, path: str, body: object) -> httpx.Response:
    """POST ``body`` as Python's json writes it: NaN/Infinity literals and escaped lone
    surrogates included, as a careless client sends them (httpx's ``json=`` refuses both)."""
    content = json.dumps(body).encode()
    return client.post(path, content=content, headers={"content-type": "application/json"})


def _known(service) -> tuple[str, str]:
    rec = service.model.recommender
    return str(rec.user_vocab.ids[0]), str(rec.item_vocab.ids[0])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"k": 5}, 422, "user_id: Field required"),
        ({"user_id": "u", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"user_id": "u", "k": 501}, 422, "k: Input should be less than or equal to 500"),
        ({"user_id": "u", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"user_id": ["u"], "k": 5}, 422, "user_id"),
        ({"user_id": "", "k": 5}, 422, "user_id"),
        ({"user_id": "u", "k": 5, "nope": 1}, 422, "nope: Extra inputs are not permitted"),
        ({"user_id": "u", "timestamp": -1}, 422, "timestamp"),
        ({"user_id": "u", "tags": "c1"}, 422, "tags: Input should be a valid list"),
        ({"user_id": "u", "attributes": {"shoe_size": 44}}, 422, "unknown user attribute"),
        ([1, 2], 422, "body"),
        # out-of-range values are refused up front, not served degraded (issue 12)
        ({"user_id": "u", "timestamp": 10**18}, 422, "timestamp: Input should be less than"),
        ({"user_id": "u", "timestamp": 2**32}, 422, "timestamp: Input should be less than"),
        ({"user_id": "u", "attributes": {"age": 10**30}}, 422, "attributes.age"),
        ({"user_id": "u", "attributes": {"age": 2**31}}, 422, "attributes.age"),
        ({"user_id": "u", "context": {"x": "\ud800"}}, 422, "context.x"),
        ({"user_id": "u", "attributes": {"x" * 3000: 1}}, 422, "xxx... (3000 chars)"),
        ({"user_id": "u", "k": 101}, 422, "k must be in 1..100"),
    ],
)
def test_bad_recommend_requests(api, body: object, status: int, message: str) -> None:
    client, _ = api
    r = _post_json(client, "/v1/recommend", body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_context_is_refused(api, literal: str) -> None:
    """NaN would be served but then dropped from the feature log (not valid JSON there)."""
    client, _ = api
    body = f'{{"user_id": "u", "k": 3, "context": {{"x": {literal}}}}}'.encode()
    r = client.post("/v1/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "context.x" in r.json()["error"], r.text


def test_k_above_the_rerank_pool_is_refused_not_cut(api) -> None:
    """The re-ranker keeps at most rerank.pool items: a larger k is a clear 422 naming the
    limit, where it used to answer 100 items while echoing the k asked for."""
    client, service = api
    pool = service.model.recommender.reranker.config.pool
    user, _ = _known(service)
    r = client.post("/v1/recommend", json={"user_id": user, "k": pool + 1})
    assert r.status_code == 422 and r.json()["field"] == "k"
    assert f"k must be in 1..{pool}" in r.json()["error"] and "rerank.pool" in r.json()["error"]
    r = client.post("/v1/recommend", json={"user_id": user, "k": pool})
    assert r.status_code == 200 and r.json()["k"] == pool
    assert "rank" not in r.json()["degraded"]


def test_framework_errors_have_the_documented_body(api) -> None:
    client, _ = api
    r = client.post(
        "/v1/recommend", content=b"\x00\x01", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
    r = client.get("/v1/recommend")
    assert r.status_code == 405 and set(r.json()) == {"error"}, r.text


def test_malformed_and_oversized_bodies(api) -> None:
    client, _ = api
    r = client.post(
        "/v1/recommend", content=b'{"user_id": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"].startswith("malformed JSON body")
    r = client.post(
        "/v1/recommend", content=b" " * 5000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "4096-byte limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.get("/v1/nowhere")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}


def test_unknown_user_is_not_an_error(api) -> None:
    client, _ = api
    r = client.post("/v1/recommend", json={"user_id": 123456789, "k": 3})
    assert r.status_code == 200 and r.json()["known_user"] is False


def test_the_recommend_body_is_the_service_answer_in_the_declared_model(api) -> None:
    """The route writes its JSON itself (no FastAPI response_model pass): the body must be
    the service's answer, every field of RecommendResponse, and the schema still published."""
    client, service = api
    user, _ = _known(service)
    r = client.post("/v1/recommend", json={"user_id": user, "k": 5, "timestamp": 10**9})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    direct = service.recommend(user, 5, timestamp=10**9, request_id=r.json()["request_id"])
    body, expected = (
        r.json(),
        json.loads(RecommendResponse.model_validate(direct).model_dump_json()),
    )
    body.pop("timings_ms"), expected.pop("timings_ms")  # wall times differ between the calls
    assert body == expected and set(body["items"][0]) == set(RecommendedItem.model_fields)
    schema = client.get("/openapi.json").json()
    ok = schema["paths"]["/v1/recommend"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/RecommendResponse"}


def test_bad_events_store_nothing(api) -> None:
    client, service = api
    user, item = _known(service)
    good = {"user_id": user, "item_id": item, "event": "click"}
    cases = [
        ({"events": []}, 422, "events"),
        ({"events": [good] * 6}, 413, "at most 5"),
        ({"events": [good, {**good, "item_id": "no-such-item"}]}, 422, "unknown item_id"),
        ({"events": [{**good, "event": "clik"}]}, 422, "unknown event type(s) ['clik']"),
        ({"events": [{**good, "event": "drop table"}]}, 422, "event: String should match"),
        ({"events": [{**good, "value": "x"}]}, 422, "value"),
        ({"events": [{"user_id": user, "event": "click"}]}, 422, "item_id: Field required"),
        # 2**63 overflowed SQLite's INTEGER: a 500 that reset the connection (issue 12)
        ({"events": [{**good, "timestamp": 2**63}]}, 422, "timestamp: Input should be less"),
        ({"events": [{**good, "timestamp": 2**32}]}, 422, "timestamp: Input should be less"),
        ({"events": [{**good, "value": 1e400}]}, 422, "value"),
    ]
    for body, status, message in cases:
        r = _post_json(client, "/v1/events", body)
        assert r.status_code == status, (body, r.text)
        assert message in r.json()["error"], r.json()
    assert service.store.recent(user, 10) == []
    r = client.post("/v1/events", json={"events": [good]})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert [e.item_id for e in service.store.recent(user, 10)] == [item]


def test_events_before_the_artifact_are_not_counted_twice(api) -> None:
    client, service = api
    _, item = _known(service)
    user = str(service.model.recommender.user_vocab.ids[1])  # no event posted for it yet
    old = service.model.cutoff - 10  # already in the artifact's history
    r = client.post(
        "/v1/events",
        json={"events": [{"user_id": user, "item_id": item, "event": "click", "timestamp": old}]},
    )
    assert r.status_code == 200
    before = service.model.history_index.for_user(service.model.user_index[user]).height
    body = client.post("/v1/recommend", json={"user_id": user, "k": 3}).json()
    assert body["history_len"] == before


@pytest.mark.parametrize(("inflight", "in_pool"), [(1, False), (2, True)])
def test_recommend_is_computed_on_the_event_loop_unless_several_may_run_at_once(
    make_service, inflight: int, in_pool: bool
) -> None:
    """One request at a time (the default) is computed on the event loop: a thread-pool hop
    cost ~1.7 ms of CPU per request. With ``inflight`` > 1 the pool runs them side by side."""
    service = make_service(inflight=inflight)
    threads: list[str] = []
    recommend_many = service.recommend_many

    def recording(*args: Any, **kwargs: Any) -> list:
        threads.append(threading.current_thread().name)
        return recommend_many(*args, **kwargs)

    service.recommend_many = recording  # type: ignore[method-assign]
    with TestClient(create_app(service.settings, service)) as client:
        r = client.post("/v1/recommend", json={"user_id": _known(service)[0], "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    assert ("AnyIO worker thread" in threads[0]) is in_pool, threads
