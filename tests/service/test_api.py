"""Bad input gets a clear 4xx JSON message; events are validated before anything is stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from funnelrec.serve.app import create_app


@pytest.fixture(scope="module")
def api(make_service) -> Iterator[tuple[TestClient, object]]:
    service = make_service(max_body_bytes=4096, max_events_per_post=5)
    with TestClient(create_app(service.settings, service)) as client:
        yield client, service


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
    ],
)
def test_bad_recommend_requests(api, body: object, status: int, message: str) -> None:
    client, _ = api
    r = client.post("/v1/recommend", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["error"], r.json()


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
    assert client.get("/v1/nowhere").status_code == 404


def test_unknown_user_is_not_an_error(api) -> None:
    client, _ = api
    r = client.post("/v1/recommend", json={"user_id": 123456789, "k": 3})
    assert r.status_code == 200 and r.json()["known_user"] is False


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
    ]
    for body, status, message in cases:
        r = client.post("/v1/events", json=body)
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
