"""Both event stores pass one contract; the service reads either on the next request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from funnelrec.errors import ConfigError
from funnelrec.serve.store import (
    Event,
    EventStore,
    RedisEventStore,
    SQLiteEventStore,
    open_store,
)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        made: EventStore = SQLiteEventStore(tmp_path / "events.sqlite")
    else:
        url = request.getfixturevalue("redis_url")
        made = RedisEventStore(url, prefix=f"test-{request.node.name}", max_per_user=50)
    yield made
    made.close()


def test_contract(store: EventStore) -> None:
    store.ping()
    assert store.recent("u1", 10) == []
    store.append([Event("u1", "i1", "impression", 10), Event("u2", "i9", "click", 11)])
    store.append([Event("u1", "i1", "click", 12, 2.5), Event("u1", "i2", "order", 13)])
    got = store.recent("u1", 10)
    assert [(e.item_id, e.event, e.timestamp) for e in got] == [
        ("i1", "impression", 10),
        ("i1", "click", 12),
        ("i2", "order", 13),
    ]
    assert got[1].value == 2.5
    assert [e.item_id for e in store.recent("u1", 2)] == ["i1", "i2"]  # the newest, in order
    assert [e.user_id for e in store.recent("u2", 10)] == ["u2"]


def test_concurrent_writers(store: EventStore) -> None:
    def write(n: int) -> None:
        for t in range(20):
            store.append([Event(f"w{n}", f"i{t}", "click", t)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in range(4):
        assert [e.timestamp for e in store.recent(f"w{n}", 100)] == list(range(20))


def test_sqlite_is_shared_between_connections(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    a, b = SQLiteEventStore(path), SQLiteEventStore(path)  # e.g. two worker processes
    a.append([Event("u", "i", "click", 1)])
    assert [e.item_id for e in b.recent("u", 5)] == ["i"]
    assert a._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    a.close()
    b.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/a.sqlite"), SQLiteEventStore)
    assert isinstance(open_store(str(tmp_path / "b.sqlite")), SQLiteEventStore)
    memory = open_store("sqlite:///:memory:")
    assert isinstance(memory, SQLiteEventStore) and memory.path == ":memory:"
    with pytest.raises(ConfigError, match="expected sqlite"):
        open_store("postgres://x")


def test_service_on_redis(make_service, redis_url: str) -> None:
    service = make_service(store=redis_url)
    rec = service.model.recommender
    user = str(rec.user_vocab.ids[2])
    first = service.recommend(user, 5)
    item = first["items"][0]["item_id"]
    service.post_events([{"user_id": user, "item_id": item, "event": "click"}])
    second = service.recommend(user, 5)
    assert second["history_len"] == first["history_len"] + 1
    assert item not in [i["item_id"] for i in second["items"]]
    assert service.ready()[1]["store"] == "ok"
