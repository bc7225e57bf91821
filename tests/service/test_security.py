"""A hostile or careless client: admin endpoints off by default and bearer-authenticated,
reloads confined to the artifacts root (never a 500, never published when refused), an
optional API key, a per-client rate limit, a per-user event cap, a rotating feature log; and
artifacts that are signed, confined to their folder, written atomically and refused in one
line by ``serve`` and ``recommend``."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from funnelrec.artifacts import KEY_ENV, SignatureError, read_manifest, sign_artifact
from funnelrec.cli.app import app as cli
from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.persist import load_recommender, save_recommender
from funnelrec.serve.app import create_app
from funnelrec.serve.consistency import replay_feature_log
from funnelrec.serve.errors import RequestError
from funnelrec.serve.featurelog import FeatureLogger, read_feature_log
from funnelrec.serve.loading import LoadedModel, load_for_serving
from funnelrec.serve.security import OUTSIDE_ROOT, RateLimiter, confine
from funnelrec.serve.service import RecommendService
from funnelrec.serve.settings import ServeSettings
from funnelrec.serve.store import Event, SQLiteEventStore
from support.artifacts import rehash

TOKEN = "admin-token-for-tests-0123456789"
KEY = "artifact-key-for-tests-0123456789"
API_KEY = "api-key-for-tests-0123456789"
runner = CliRunner()


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def root(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifacts root holding a copy of the tiny artifact as ``current``."""
    made = tmp_path_factory.mktemp("root")
    shutil.copytree(tiny_artifacts, made / "current")
    return made


@pytest.fixture(scope="module")
def model(root: Path) -> LoadedModel:
    return load_for_serving(root / "current")


@pytest.fixture(scope="module")
def make_client(
    root: Path, model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., tuple[TestClient, RecommendService]]]:
    """``make_client(**settings)``: a started app on the module's loaded model."""
    opened: list[TestClient] = []

    def make(**overrides: object) -> tuple[TestClient, RecommendService]:
        settings = ServeSettings(
            artifacts=root / "current",
            state_dir=tmp_path_factory.mktemp("state"),
            clock_offset_s=model.cutoff + 1 - int(time.time()),
            **overrides,  # type: ignore[arg-type]
        )
        service = RecommendService(settings, model=model)
        client = TestClient(create_app(settings, service))
        client.__enter__()
        opened.append(client)
        return client, service

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def admin(make_client) -> tuple[TestClient, RecommendService]:
    return make_client(admin_token=TOKEN)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _drop(root: Path, *rels: str) -> None:
    """Delete files and their manifest entries, then rehash (a stage removed on purpose)."""
    manifest = json.loads((root / "manifest.json").read_text())
    for rel in rels:
        (root / rel).unlink()
        del manifest["files"][rel]
    (root / "manifest.json").write_text(json.dumps(manifest))
    rehash(root)


def _wait_reload(service: RecommendService) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = service.reloads.status()
        if state["state"] != "loading":
            return state
        time.sleep(0.05)
    raise AssertionError("reload did not finish")


# ---------------------------------------------------------------------------- admin
def test_admin_endpoints_are_off_by_default(make_client) -> None:
    client, _ = make_client()
    assert client.post("/admin/reload", json={}).status_code == 404
    assert client.get("/admin/status").status_code == 404
    assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_docs_only_when_asked(make_client) -> None:
    client, _ = make_client(docs=True)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"X": TOKEN}],
)
def test_admin_needs_the_token(admin, headers: dict) -> None:
    client, _ = admin
    for r in (
        client.post("/admin/reload", json={"path": "current"}, headers=headers),
        client.get("/admin/status", headers=headers),
    ):
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert "admin token" in r.json()["error"]
    assert client.get("/admin/status", headers=AUTH).status_code == 200


def test_reload_outside_the_root_is_403_whether_or_not_it_exists(
    admin, root: Path, tiny_artifacts: Path
) -> None:
    client, service = admin
    (root / "escape").symlink_to(tiny_artifacts, target_is_directory=True)
    (root / "etc").symlink_to("/etc", target_is_directory=True)
    answers = []
    for path in [
        "/etc",
        "/no/such/folder/anywhere",
        str(tiny_artifacts),  # a valid artifact, but outside
        "../../../../etc",
        "current/../../",
        "escape",  # a symlink inside the root that leads out
        "etc/ssl",
        "/proc/1/root",
    ]:
        r = client.post("/admin/reload", json={"path": path}, headers=AUTH)
        assert r.status_code == 403, (path, r.text)
        answers.append(r.json())
    assert all(a == {"error": OUTSIDE_ROOT, "field": "path"} for a in answers)
    assert service.reloads.status()["state"] == "idle"  # nothing was loaded
    r = client.post("/admin/reload", json={"path": "no-such"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"] == "no-such: not a folder"
    with pytest.raises(RequestError) as refused:
        confine(service.reloads.root, "bad\x00byte")  # would be a ValueError, a 500
    assert refused.value.status == 403


def test_a_refused_reload_is_never_published(admin, root: Path) -> None:
    client, service = admin
    control = service.settings.control_file
    broken = root / "broken"
    shutil.copytree(root / "current", broken)
    (broken / "history.parquet").write_bytes(b"tampered")
    assert client.post("/admin/reload", json={"path": "broken"}, headers=AUTH).status_code == 202
    state = _wait_reload(service)
    assert state["state"] == "failed" and "does not match the manifest" in state["error"]
    assert not control.exists()  # a respawned worker would otherwise fail to start

    shutil.copytree(root / "current", root / "v2")
    r = client.post("/admin/reload", json={"path": "v2"}, headers=AUTH)  # relative: to root
    assert r.status_code == 202, r.text
    assert _wait_reload(service)["state"] == "done"
    assert json.loads(control.read_text())["artifacts"] == str((root / "v2").resolve())
    status = client.get("/admin/status", headers=AUTH)
    assert status.json()["artifacts"] == "v2" and status.json()["reload"]["path"] == "v2"
    resolved = str(root.resolve())
    assert resolved not in status.text and resolved not in client.get("/readyz").text


# ---------------------------------------------------------------------------- clients
def test_rate_limit_answers_429_with_retry_after(make_client) -> None:
    client, _ = make_client(rate_limit=0.01, rate_burst=2)
    assert [client.get("/metrics").status_code for _ in range(2)] == [200, 200]
    r = client.post("/v1/recommend", json={"user_id": "u", "k": 3})
    assert r.status_code == 429 and "rate limit" in r.json()["error"]
    assert int(r.headers["retry-after"]) >= 1
    assert client.get("/healthz").status_code == 200  # probes are never limited
    other = TestClient(client.app, client=("10.0.0.2", 4000))  # another client's own bucket
    assert other.get("/metrics").status_code == 200


def test_rate_limiter_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0
    now[0] = 0.5
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") > 0


def test_api_key_and_the_per_user_event_cap(make_client, model: LoadedModel) -> None:
    client, service = make_client(api_key=API_KEY, max_events_per_user=3)
    body = {"user_id": "u", "k": 2}
    assert client.post("/v1/recommend", json=body).status_code == 401
    wrong = client.post("/v1/recommend", json=body, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert client.post("/v1/recommend", json=body, headers={"X-API-Key": API_KEY}).is_success
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert client.post("/v1/recommend", json=body, headers=bearer).is_success
    items = [str(i) for i in model.item_ids[:5]]
    events = [{"user_id": "flood", "item_id": i, "event": "click"} for i in items]
    assert client.post("/v1/events", json={"events": events}).status_code == 401
    r = client.post("/v1/events", json={"events": events}, headers=bearer)
    assert r.status_code == 200 and r.json()["accepted"] == 5
    assert [e.item_id for e in service.store.recent("flood", 100)] == items[2:]


def test_sqlite_store_keeps_the_newest_events_per_user(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "events.sqlite", max_per_user=4)
    for batch in range(5):
        store.append([Event("u", f"i{batch}-{n}", "click", batch) for n in range(3)])
        store.append([Event("other", f"i{batch}", "click", batch)])
    assert [e.item_id for e in store.recent("u", 100)] == ["i3-2", "i4-0", "i4-1", "i4-2"]
    assert len(store.recent("other", 100)) == 4
    store.close()
    with sqlite3.connect(tmp_path / "events.sqlite") as conn:  # trimmed on disk, not on read
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (8,)


def test_feature_log_rotates_and_is_read_back_whole(tmp_path: Path) -> None:
    log = FeatureLogger(tmp_path / "features.jsonl", max_bytes=1000, backups=2)
    for n in range(40):
        log.write({"version": 1, "n": n, "pad": "x" * 80})  # ~110 bytes a line
    log.close()
    names = sorted(p.name for p in tmp_path.glob("features.jsonl*"))
    assert names == [
        "features.jsonl",
        "features.jsonl.1",
        "features.jsonl.2",
        "features.jsonl.lock",
    ]
    assert all((tmp_path / n).stat().st_size < 1000 + 120 for n in names)
    kept = [record["n"] for _, record in read_feature_log(tmp_path / "features.jsonl")]
    # The newest records, oldest first across the three files; the oldest were dropped.
    assert kept == list(range(40 - len(kept), 40)) and 20 <= len(kept) < 40


def test_consistency_replays_a_rotated_log(make_client, root: Path) -> None:
    client, service = make_client(feature_log_max_bytes=1024, feature_log_backups=5)
    for user in ["a", "b", "c"]:
        assert client.post("/v1/recommend", json={"user_id": user, "k": 5}).is_success
    service.feature_log.flush()
    log = service.settings.feature_log_path
    # Each record is over 1 KiB: every request after the first rotated the log.
    assert log.with_name(log.name + ".2").is_file()
    report = replay_feature_log(root / "current", log)
    assert (report.requests, report.replayed) == (3, 3) and report.ok


# ---------------------------------------------------------------------------- artifacts
@pytest.fixture
def signed(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A signed copy of the artifact, with the key configured."""
    out = tmp_path / "signed"
    shutil.copytree(root / "current", out)
    monkeypatch.setenv(KEY_ENV, KEY)
    sign_artifact(out)
    return out


def test_with_a_key_only_a_signed_manifest_is_served(
    signed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_for_serving(signed).check is not None
    (signed / "history.parquet").write_bytes(b"poisoned")
    rehash(signed)
    with pytest.raises(SignatureError, match="signature does not match"):
        load_for_serving(signed)
    (signed / "manifest.sig").unlink()
    with pytest.raises(SignatureError, match="unsigned artifact"):
        load_for_serving(signed)
    settings = ServeSettings(artifacts=signed, state_dir=tmp_path / "state")
    with pytest.raises(SignatureError), TestClient(create_app(settings)):
        pass
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(FunnelrecError, match="at least 16"):
        read_manifest(signed)


def test_save_signs_and_a_rewrite_without_the_key_is_refused(
    signed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = load_recommender(signed)
    save_recommender(rec, tmp_path / "resaved")
    assert (tmp_path / "resaved" / "manifest.sig").is_file()
    load_recommender(tmp_path / "resaved")
    # The attack: load, edit, save with the public functions on a host without the key.
    monkeypatch.delenv(KEY_ENV)
    rec.ranker = None  # the ranker removed; the golden set is re-recorded to match
    save_recommender(rec, tmp_path / "poisoned")
    monkeypatch.setenv(KEY_ENV, KEY)
    args = ["--users", str(_users_file(tmp_path)), "--out", str(tmp_path / "r.csv")]
    result = runner.invoke(cli, ["recommend", "--artifacts", str(tmp_path / "poisoned"), *args])
    assert result.exit_code == 2, result.output
    assert "unsigned artifact" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def _users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text("someone\n")
    return path


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        (("rank/ranker.npz", "rank/log.parquet"), "self-check failed"),
        (("channels/itemcf.npz",), "self-check failed"),
        (("history.parquet",), "required file(s) not listed: history.parquet"),
    ],
)
def test_recommend_refuses_a_stripped_artifact_in_one_line(
    root: Path, tmp_path: Path, drop: tuple[str, ...], message: str
) -> None:
    art = tmp_path / "art"
    shutil.copytree(root / "current", art)
    _drop(art, *drop)
    args = ["recommend", "--artifacts", str(art), "--users", str(_users_file(tmp_path))]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_a_corrupted_rehashed_file_is_one_line(root: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(root / "current", art)
    (art / "channels" / "popular.npz").write_bytes(b"not an npz")
    rehash(art)
    args = ["recommend", "--artifacts", str(art), "--users", str(_users_file(tmp_path))]
    result = runner.invoke(cli, [*args, "--out", str(tmp_path / "r.csv"), "--no-self-check"])
    assert result.exit_code == 2, result.output
    assert "popular.npz: unreadable or inconsistent artifact" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_manifest_entries_stay_inside_the_folder(root: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(root / "current", art)
    manifest_path = art / "manifest.json"
    original = manifest_path.read_text()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    digest = hashlib.sha256(b"secret").hexdigest()
    (art / "link.txt").symlink_to(outside)
    for rel, match in [
        ("../../../../../etc/passwd", "not a path inside"),
        (str(outside), "not a path inside"),
        ("vocab/../../secret.txt", "not a path inside"),
        ("link.txt", "leads outside"),
    ]:
        manifest = json.loads(original)
        manifest["files"][rel] = digest
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(FunnelrecError, match=match):
            read_manifest(art)
    manifest_path.write_text(original)
    (art / "history.parquet").rename(tmp_path / "history.parquet")
    (art / "history.parquet").symlink_to(tmp_path / "history.parquet")
    with pytest.raises(FunnelrecError, match="'history.parquet' leads outside"):
        read_manifest(art)


def test_a_failed_save_leaves_the_previous_artifact(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import funnelrec.artifacts.store as store

    out = tmp_path / "out"
    shutil.copytree(root / "current", out)
    before = (out / "manifest.json").read_bytes()
    rec = load_recommender(out)
    seen: list[bytes] = []

    def killed(folder: Path, manifest: bytes) -> bool:
        # Every new file and the new manifest are written by now: the old folder is intact.
        assert folder != out and (folder / "rank" / "ranker.npz").is_file()
        seen.append((out / "manifest.json").read_bytes())
        read_manifest(out)
        raise KeyboardInterrupt  # what a killed run does here: nothing after this runs

    monkeypatch.setattr(store, "write_signature", killed)
    with pytest.raises(KeyboardInterrupt):
        save_recommender(rec, out)
    assert seen == [before] and (out / "manifest.json").read_bytes() == before
    assert load_for_serving(out).check is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no half-written folder
    monkeypatch.undo()
    (out / "stale.txt").write_text("from the previous artifact")
    save_recommender(rec, out)  # a complete save replaces the folder as a whole
    assert not (out / "stale.txt").exists() and read_manifest(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FunnelrecError, match="not an artifact folder"):
        save_recommender(rec, tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--admin-token", "short"], "--admin-token: String should have at least 16"),
        (["--admin-token", TOKEN, "--artifacts-root", "/"], "the artifacts root would be /"),
        (["--api-key", "short"], "--api-key: String should have at least 16"),
    ],
)
def test_serve_refuses_weak_options_in_one_line(root: Path, args: list[str], message: str) -> None:
    result = runner.invoke(cli, ["serve", "--artifacts", str(root / "current"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "short" not in result.output.replace(message, "")
