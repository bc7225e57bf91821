"""The real server process: recommend, feedback that the next response reflects, metrics,
hot reload without dropped requests, and the feature log replayed with no difference."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from funnelrec.cli.app import app
from funnelrec.pipeline.persist import load_recommender
from funnelrec.serve.consistency import replay_feature_log

ADMIN_TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _admin(root: Path) -> tuple[str, ...]:
    return ("--admin-token", ADMIN_TOKEN, "--artifacts-root", str(root))


@pytest.fixture(scope="module")
def server(
    tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory, start_server
) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("serve")
    # The root holds the session's artifact and the folders these tests reload.
    running = start_server(tiny_artifacts, state, *_admin(state.parent))
    try:
        yield running.base, state
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(server: tuple[str, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0], timeout=30, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def users(tiny_artifacts: Path) -> list:
    rec = load_recommender(tiny_artifacts)
    counts = rec.history.group_by("user_idx").len().sort("len", descending=True)
    warm = counts["user_idx"].head(5).to_list()
    return rec.user_vocab.decode(warm).to_list()


def test_health_ready_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/recommend", "/v1/events", "/metrics", "/admin/reload"} <= set(paths)
    assert client.get("/docs").status_code == 404  # off by default (its assets load from a CDN)


def test_recommend_known_user(client: httpx.Client, users: list) -> None:
    r = client.post("/v1/recommend", json={"user_id": users[0], "k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["known_user"] is True and body["history_len"] > 0
    assert len(body["items"]) == 7
    assert [i["rank"] for i in body["items"]] == list(range(1, 8))
    first = body["items"][0]
    assert {"item_id", "score", "source", "merged_rank", "rank", "probabilities"} <= set(first)
    # The tasks the ranker models (a task with too few training positives is not modelled).
    assert "click" in set(first["probabilities"]) <= {"click", "cart", "order"}
    assert body["request_id"] and body["degraded"] == []
    assert {"recall.itemcf", "merge", "rank", "total"} <= set(body["timings_ms"])


def test_unknown_user_takes_cold_start(client: httpx.Client) -> None:
    r = client.post(
        "/v1/recommend",
        json={"user_id": "someone-new", "k": 5, "attributes": {"age": 30}, "tags": ["c0"]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["known_user"] is False and body["history_len"] == 0
    assert len(body["items"]) == 5


def test_feedback_reaches_the_next_request(client: httpx.Client, users: list) -> None:
    user = users[1]
    before = client.post("/v1/recommend", json={"user_id": user, "k": 10}).json()
    clicked = before["items"][0]["item_id"]
    r = client.post(
        "/v1/events",
        json={
            "events": [
                {"user_id": user, "item_id": clicked, "event": "impression"},
                {"user_id": user, "item_id": clicked, "event": "click"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    after = client.post("/v1/recommend", json={"user_id": user, "k": 10}).json()
    assert after["history_len"] == before["history_len"] + 1  # the click is a positive
    assert clicked not in [i["item_id"] for i in after["items"]]  # seen items are excluded


def test_feedback_gives_a_new_user_a_history(client: httpx.Client, users: list) -> None:
    item = client.post("/v1/recommend", json={"user_id": users[2], "k": 1}).json()["items"][0]
    post = {"events": [{"user_id": "fresh-user", "item_id": item["item_id"], "event": "order"}]}
    assert client.post("/v1/events", json=post).status_code == 200
    body = client.post("/v1/recommend", json={"user_id": "fresh-user", "k": 5}).json()
    assert body["known_user"] is False and body["history_len"] == 1
    assert item["item_id"] not in [i["item_id"] for i in body["items"]]


def test_metrics_exposition(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    assert 'funnelrec_stage_seconds_bucket{le="0.01",stage="rank"}' in text
    assert 'funnelrec_stage_seconds_count{stage="recall.itemcf"}' in text
    assert 'funnelrec_requests_total{route="/v1/recommend",status="200"}' in text
    assert 'funnelrec_events_total{event="click"}' in text


def _batch_totals(client: httpx.Client) -> tuple[float, float]:
    """``(requests, funnel runs)`` answered so far (``funnelrec_batch_size`` sum and count)."""
    totals = {"sum": 0.0, "count": 0.0}
    for line in client.get("/metrics").text.splitlines():
        for part in totals:
            if line.startswith(f"funnelrec_batch_size_{part} "):
                totals[part] += float(line.split()[-1])
    return totals["sum"], totals["count"]


def test_concurrent_keep_alive_clients_are_answered_in_batches(
    server: tuple[str, Path], client: httpx.Client, users: list
) -> None:
    """Four clients in a loop on their own connections: their requests meet on the worker
    and share funnel runs (the replay test below replays them too)."""
    before = _batch_totals(client)
    failures: list[str] = []

    def loop(user: str) -> None:
        with httpx.Client(base_url=server[0], timeout=30) as own:
            for _ in range(8):
                r = own.post("/v1/recommend", json={"user_id": user, "k": 5})
                if r.status_code != 200 or len(r.json()["items"]) != 5:
                    failures.append(r.text)

    threads = [threading.Thread(target=loop, args=(user,)) for user in users[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:2]
    answered, runs = (after - b for after, b in zip(_batch_totals(client), before, strict=True))
    assert answered == 32 and runs < 32, (answered, runs)


def test_bad_input_over_http(client: httpx.Client) -> None:
    r = client.post(
        "/v1/recommend", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = client.post("/v1/recommend", json={"user_id": "u", "k": 0})
    assert r.status_code == 422 and "k" in r.json()["error"]
    r = client.post("/v1/recommend", content=b"x" * 100_000)
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_consistency_replay_is_empty(
    client: httpx.Client, server: tuple[str, Path], tiny_artifacts: Path, users: list
) -> None:
    for user in users:
        assert client.post("/v1/recommend", json={"user_id": user, "k": 20}).status_code == 200
    log = server[1] / "features.jsonl"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 10:
        time.sleep(0.1)
    report = replay_feature_log(tiny_artifacts, log)
    assert report.replayed >= 10 and report.skipped == {}
    assert report.ok, [m.describe() for m in report.mismatches[:5]]
    result = CliRunner().invoke(
        app, ["consistency", "--artifacts", str(tiny_artifacts), "--log", str(log)]
    )
    assert result.exit_code == 0, result.output
    assert "0 differ" in result.output


def test_hot_reload_drops_no_request(
    client: httpx.Client, server: tuple[str, Path], tiny_artifacts: Path, users: list
) -> None:
    new = server[1].parent / "artifacts-v2"
    shutil.copytree(tiny_artifacts, new)
    errors: list[str] = []
    served = [0]
    stop_flag = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server[0], timeout=30) as c:
            while not stop_flag.is_set():
                r = c.post("/v1/recommend", json={"user_id": users[0], "k": 5})
                if r.status_code != 200:
                    errors.append(r.text)
                served[0] += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        r = client.post("/admin/reload", json={"path": str(new)})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        status = {}
        while time.monotonic() < deadline:
            status = client.get("/admin/status").json()
            if status["reload"]["state"] != "loading":
                break
            time.sleep(0.1)
        assert status["reload"]["state"] == "done", status
        assert status["artifacts"] == new.name  # relative to the artifacts root
        time.sleep(0.3)
    finally:
        stop_flag.set()
        thread.join()
    assert errors == [] and served[0] > 0

    # A refused artifact leaves the serving one in place.
    broken = server[1].parent / "artifacts-broken"
    shutil.copytree(tiny_artifacts, broken)
    (broken / "history.parquet").write_bytes(b"tampered")
    assert client.post("/admin/reload", json={"path": str(broken)}).status_code == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = client.get("/admin/status").json()
        if status["reload"]["state"] != "loading":
            break
        time.sleep(0.1)
    assert status["reload"]["state"] == "failed"
    assert "does not match the manifest" in status["reload"]["error"]
    assert status["artifacts"] == new.name
    assert client.post("/v1/recommend", json={"user_id": users[0], "k": 3}).status_code == 200
    r = client.post("/admin/reload", json={"path": str(server[1] / "nope")})
    assert r.status_code == 422 and "not a folder" in r.json()["error"]


def test_two_workers_follow_a_reload(tiny_artifacts: Path, tmp_path: Path, start_server) -> None:
    root = tmp_path.parent
    running = start_server(tiny_artifacts, tmp_path / "serve", "--workers", "2", *_admin(root))
    base = running.base
    try:
        new = tmp_path / "v2"
        shutil.copytree(tiny_artifacts, new)
        expected = new.resolve().relative_to(root.resolve()).as_posix()
        with httpx.Client(base_url=base, timeout=30, headers=AUTH) as c:
            assert c.post("/admin/reload", json={"path": str(new)}).status_code == 202
            deadline = time.monotonic() + 60
            seen: set[str] = set()
            statuses: list[dict] = []
            while time.monotonic() < deadline:
                # Fresh connections spread over both workers.
                statuses = [
                    httpx.get(f"{base}/admin/status", headers=AUTH).json() for _ in range(8)
                ]
                seen = {status["artifacts"] for status in statuses}
                if seen == {expected}:
                    break
                time.sleep(0.2)
            assert seen == {expected}, json.dumps(statuses)
            for _ in range(4):
                r = httpx.post(f"{base}/v1/recommend", json={"user_id": "x", "k": 3}, timeout=30)
                assert r.status_code == 200, r.text
            # Aggregated over the workers' multiprocess files.
            text = c.get("/metrics").text
            assert 'funnelrec_requests_total{route="/v1/recommend",status="200"} 4.0' in text
    finally:
        running.stop()
