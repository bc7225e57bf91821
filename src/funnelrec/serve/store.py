"""The online event store: feedback posted after training, read back per user on the next
request (the user's history for recall, extra rows of the ranker's log for its features).

Two backends behind :class:`EventStore`:

* :class:`SQLiteEventStore` (default, embedded): one file in WAL mode, safe for several worker
  processes on one host; one connection per thread; trimmed to the newest ``max_per_user``
  events of each user on every append (as Redis is), so one client cannot grow it without
  bound through a single user id.
* :class:`RedisEventStore`: one Redis list per user (``<prefix>:events:<user_id>``), trimmed to
  the newest ``max_per_user`` events; for several hosts.

Ids are stored as strings (the artifact-independent external ids), so the store survives a
reload onto a new artifact.

Example:
    >>> store = SQLiteEventStore(":memory:")
    >>> store.append([Event("u1", "i9", "click", 100)])
    >>> [e.item_id for e in store.recent("u1", 10)]
    ['i9']
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from funnelrec.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Event:
    """One feedback event (external ids, unix seconds)."""

    user_id: str
    item_id: str
    event: str
    timestamp: int
    value: float = 1.0

    def to_json(self) -> str:
        return json.dumps(
            [self.user_id, self.item_id, self.event, self.timestamp, self.value],
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        user_id, item_id, event, timestamp, value = json.loads(text)
        return cls(str(user_id), str(item_id), str(event), int(timestamp), float(value))


class EventStore(Protocol):
    """Append events; read a user's newest events back, oldest first."""

    def append(self, events: Sequence[Event]) -> None: ...

    def recent(self, user_id: str, limit: int) -> list[Event]:
        """The user's newest ``limit`` events in arrival order (oldest first)."""
        ...

    def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...

    def close(self) -> None: ...


class SQLiteEventStore:
    """Events in one SQLite file (WAL, ``synchronous=NORMAL``); ``":memory:"`` for tests.
    Keeps the newest ``max_per_user`` events of each user."""

    def __init__(
        self, path: Path | str, *, max_per_user: int = 1000, busy_timeout_ms: int = 5000
    ) -> None:
        if max_per_user < 1:
            raise ConfigError(f"max_per_user must be at least 1, got {max_per_user}")
        self.path = str(path)
        self.max_per_user = int(max_per_user)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path == ":memory:":
            # One shared connection: every thread must see the same in-memory database.
            self._shared: sqlite3.Connection | None = self._open()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._shared = None
            self._conn()  # create the schema now, fail early on a bad path

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_ms / 1000, check_same_thread=False
        )
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        if self.path != ":memory:":
            # Switching to WAL needs a lock that workers racing on a fresh file fight over
            # ("database is locked"); the launcher initialises the file before they start,
            # and a file already in WAL (persistent) is not switched again.
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "user_id TEXT NOT NULL, item_id TEXT NOT NULL, event TEXT NOT NULL, "
            "timestamp INTEGER NOT NULL, value REAL NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS events_user ON events (user_id, seq)")
        conn.commit()
        with self._lock:
            self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._shared is not None:
            return self._shared
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        return conn

    def append(self, events: Sequence[Event]) -> None:
        conn = self._conn()
        rows = [(e.user_id, e.item_id, e.event, e.timestamp, e.value) for e in events]
        with self._lock if self._shared is not None else _NULL_LOCK:
            conn.executemany(
                "INSERT INTO events (user_id, item_id, event, timestamp, value) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            # Same transaction: readers never see a user over the cap. The subquery walks the
            # (user_id, seq) index to the oldest event kept; NULL (under the cap) deletes none.
            conn.executemany(
                "DELETE FROM events WHERE user_id = ?1 AND seq < (SELECT seq FROM events "
                "WHERE user_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                [(user, self.max_per_user - 1) for user in {e.user_id for e in events}],
            )
            conn.commit()

    def recent(self, user_id: str, limit: int) -> list[Event]:
        conn = self._conn()
        with self._lock if self._shared is not None else _NULL_LOCK:
            rows = conn.execute(
                "SELECT user_id, item_id, event, timestamp, value FROM events "
                "WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                (user_id, int(limit)),
            ).fetchall()
        return [Event(u, i, e, int(t), float(v)) for u, i, e, t, v in reversed(rows)]

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_LOCK = _NullLock()


class RedisEventStore:
    """Events in Redis lists, one per user, trimmed to the newest ``max_per_user``."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "funnelrec",
        max_per_user: int = 1000,
        timeout_s: float = 1.0,
    ) -> None:
        import redis  # imported here: the embedded default needs no Redis client

        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = prefix
        self.max_per_user = max_per_user

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}:events:{user_id}"

    def append(self, events: Sequence[Event]) -> None:
        pipe = self._client.pipeline(transaction=False)
        by_user: dict[str, list[str]] = {}
        for e in events:
            by_user.setdefault(e.user_id, []).append(e.to_json())
        for user_id, payloads in by_user.items():
            pipe.rpush(self._key(user_id), *payloads)
            pipe.ltrim(self._key(user_id), -self.max_per_user, -1)
        pipe.execute()

    def recent(self, user_id: str, limit: int) -> list[Event]:
        raw = self._client.lrange(self._key(user_id), -int(limit), -1)
        return [Event.from_json(r) for r in raw]

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()


def open_store(url: str, *, max_per_user: int = 1000) -> EventStore:
    """``sqlite:///relative/events.sqlite``, ``sqlite:////absolute/events.sqlite``,
    ``sqlite:///:memory:`` or a bare path; or ``redis://host:port/db``. Either keeps the
    newest ``max_per_user`` events of each user.

    Raises:
        ConfigError: an unknown scheme.
    """
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisEventStore(url, max_per_user=max_per_user)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///") or ":memory:"
        return SQLiteEventStore(path, max_per_user=max_per_user)
    if "://" in url:
        raise ConfigError(f"event store '{url}': expected sqlite:///PATH or redis://HOST:PORT")
    return SQLiteEventStore(url, max_per_user=max_per_user)
