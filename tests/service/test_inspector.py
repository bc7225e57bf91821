"""The inspector's HTTP side (``/inspect``, admin token only) and ``funnelrec inspect``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from funnelrec.cli.app import app as cli
from funnelrec.serve.app import create_app
from funnelrec.serve.launch import free_port

TOKEN = "inspector-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
runner = CliRunner()


@pytest.fixture(scope="module")
def admin(make_service) -> Iterator[tuple[TestClient, object]]:
    service = make_service(admin_token=TOKEN)
    with TestClient(create_app(service.settings, service)) as client:
        yield client, service


def _user(service) -> str:
    return str(service.model.recommender.user_vocab.ids[0])


def test_no_inspector_without_an_admin_token(make_service) -> None:
    service = make_service()
    with TestClient(create_app(service.settings, service)) as client:
        assert client.get("/inspect").status_code == 404
        assert client.get("/inspect/api/meta").status_code == 404


def test_page_and_assets_are_served_from_the_package(admin) -> None:
    client, _ = admin
    page = client.get("/inspect")
    assert page.status_code == 200 and "inspector.js" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for name, kind in (("inspector.js", "javascript"), ("inspector.css", "css")):
        asset = client.get(f"/inspect/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert client.get("/inspect/static/app.py").status_code == 404
    assert client.get("/inspect/static/..%2Fapp.py").status_code == 404


def test_the_data_needs_the_bearer_token(admin) -> None:
    client, service = admin
    for call in (
        lambda h: client.get("/inspect/api/meta", headers=h),
        lambda h: client.get("/inspect/api/users?q=1", headers=h),
        lambda h: client.post("/inspect/api/trace", json={"user_id": _user(service)}, headers=h),
    ):
        assert call({}).status_code == 401
        assert call({"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert call(AUTH).status_code == 200


def test_meta_search_and_trace(admin) -> None:
    client, service = admin
    meta = client.get("/inspect/api/meta", headers=AUTH).json()
    assert meta["channels"] and meta["max_k"] == 100
    user = _user(service)
    found = client.get(f"/inspect/api/users?q={user}", headers=AUTH).json()["users"]
    assert found[0] == user
    trace = client.post(
        "/inspect/api/trace", json={"user_id": user, "k": 7, "why_not": "nope"}, headers=AUTH
    ).json()
    assert {"user", "channels", "merge", "rank", "rerank", "final"} <= set(trace)
    assert len(trace["final"]) == 7 and trace["user"]["known"]
    assert trace["why_not"]["verdict"] == "unknown_item"
    served = client.post("/v1/recommend", json={"user_id": user, "k": 7}).json()
    assert [i["item_id"] for i in served["items"]] == [e["item_id"] for e in trace["final"]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"user_id": "u", "k": 101}, "k must be in 1..100"),
        ({"user_id": "u", "attributes": {"shoe_size": 44}}, "unknown user attribute"),
        ({"user_id": "u", "why_not": ["x"]}, "why_not"),
        ({"k": 5}, "user_id: Field required"),
    ],
)
def test_bad_trace_requests_are_422(admin, body: dict, message: str) -> None:
    client, _ = admin
    r = client.post("/inspect/api/trace", json=body, headers=AUTH)
    assert r.status_code == 422 and message in r.json()["error"]


def test_a_posted_event_is_in_the_traced_history(admin) -> None:
    client, service = admin
    rec = service.model.recommender
    user, item = "inspector-new-user", rec.item_vocab.ids[3]
    assert (
        client.post(
            "/v1/events", json={"events": [{"user_id": user, "item_id": item, "event": "click"}]}
        ).status_code
        == 200
    )
    trace = client.post("/inspect/api/trace", json={"user_id": user}, headers=AUTH).json()
    assert [h["item_id"] for h in trace["user"]["history"]] == [item]


def test_cli_prints_a_trace_and_refuses_mistakes(tiny_artifacts: Path) -> None:
    from funnelrec.serve.loading import load_for_serving

    user = str(load_for_serving(tiny_artifacts, check=False).recommender.user_vocab.ids[0])
    args = ["inspect", str(tiny_artifacts), "--no-self-check", "--user", user, "--k", "5"]
    result = runner.invoke(cli, [*args, "--why-not", "no-such-item"])
    assert result.exit_code == 0, result.output
    for heading in ("recall channels:", "merge:", "ranking:", "re-ranking:", "final list:"):
        assert heading in result.output
    assert "why not no-such-item: unknown_item" in result.output
    for bad, message in (
        (["inspect", str(tiny_artifacts), "--why-not", "3"], "--why-not needs --user"),
        ([*args, "--attribute", "age"], "--attribute takes NAME=VALUE"),
        ([*args, "--attribute", "shoe=44"], "unknown user attribute"),
        (["inspect", str(tiny_artifacts / "nope"), "--user", "1"], "nope"),
        ([*args, "--items", str(tiny_artifacts / "missing.parquet")], "missing.parquet"),
    ):
        failed = runner.invoke(cli, bad)
        assert failed.exit_code == 2, (bad, failed.output)
        assert message in failed.output and "Traceback" not in failed.output


def test_the_offline_server_binds_loopback_behind_a_random_token(tiny_artifacts: Path) -> None:
    """``funnelrec inspect ARTIFACTS``: the printed URL carries the token in its fragment."""
    port = free_port()
    cmd = [sys.executable, "-m", "funnelrec", "inspect", str(tiny_artifacts), "--no-self-check"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 120
        while "#token=" not in url and time.monotonic() < deadline:
            url = proc.stdout.readline()
            assert url or proc.poll() is None, "funnelrec inspect exited"
        base, token = url.strip().split(": ", 1)[1].split("/inspect#token=")
        assert base == f"http://127.0.0.1:{port}" and len(token) >= 24
        for _ in range(100):  # the URL is printed just before uvicorn binds
            try:
                page = httpx.get(f"{base}/inspect", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert page.status_code == 200
        meta = f"{base}/inspect/api/meta"
        assert httpx.get(meta, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(meta, headers=auth, timeout=10).json()["channels"]
        assert httpx.post(f"{base}/v1/recommend", json={"user_id": 1}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=30)
