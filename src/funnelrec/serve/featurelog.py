"""Feature logging: one JSON line per served request (the request, the store events it read,
what each stage scored), written off the request path by a background thread.

Lines go to one file opened with ``O_APPEND`` and are written with one ``write`` each, so
several worker processes can share the file without interleaving lines. Past ``max_bytes``
the file is rotated (``features.jsonl`` -> ``features.jsonl.1`` -> ``.2`` ..., ``backups``
kept) under an exclusive ``flock`` on ``features.jsonl.lock``, and every writer reopens the
path when it no longer names the file its descriptor writes to (another worker rotated it).
:func:`read_feature_log` reads the rotated files too, oldest first.

Record layout (``version`` 1)::

    {"version": 1, "request_id", "time", "artifact_id", "user_id", "k", "timestamp",
     "attributes", "tags", "context", "events": [[item_id, event, timestamp, value], ...],
     "dropped": {channel: reason}, "ranker_failed", "fallback", "known_user",
     "timings_ms": {stage: ms},
     "items": {"item_id": [...], "source": [...], "merged_rank": [...], "p_click": [...],
               "score": [...], "rank": [...], ...},          # the returned top-k, best first
     "pool":  {...same columns...}}                          # the ranked pool, log_depth rows
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pydantic_core

from funnelrec.errors import DataError

logger = logging.getLogger(__name__)
FEATURE_LOG_VERSION = 1


class FeatureLogger:
    """Appends records as JSON lines from a background thread; rotates past ``max_bytes``
    (0: never), keeping ``backups`` rotated files."""

    def __init__(self, path: Path, *, max_bytes: int = 0, backups: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self._fd = self._open()
        self._lock_fd = -1
        if max_bytes > 0:
            lock = self.path.with_name(self.path.name + ".lock")
            self._lock_fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o644)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)
        self._thread.start()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> None:
        """Queue one record; when the writer falls far behind, records are dropped (counted)
        rather than slowing requests down."""
        # pydantic-core's encoder (UTF-8, shortest round-trip floats): ~10 us for a request's
        # ~3.5 KB record against ~100 us for json.dumps, on the request's thread. A value it
        # cannot encode (a lone surrogate, an unknown type) raises ValueError, as json did.
        line = pydantic_core.to_json(record) + b"\n"
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            try:
                if line is None:
                    return
                if self.max_bytes > 0:
                    self._rotate_if_due()
                os.write(self._fd, line)
            except OSError as e:
                logger.error("feature log %s: write failed: %s", self.path, e)
            finally:
                self._queue.task_done()

    def _stale(self) -> bool:
        """The path names another file than ours (rotated by another worker) or none."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return True
        ours = os.fstat(self._fd)
        return (current.st_dev, current.st_ino) != (ours.st_dev, ours.st_ino)

    def _rotate_if_due(self) -> None:
        if os.fstat(self._fd).st_size < self.max_bytes and not self._stale():
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # one rotation at a time across workers
        try:
            # Under the lock, look again: another worker may have rotated while we waited.
            try:
                due = self.path.stat().st_size >= self.max_bytes
            except FileNotFoundError:
                due = False
            if due:
                for n in range(self.backups - 1, 0, -1):
                    older = self.path.with_name(f"{self.path.name}.{n}")
                    if older.exists():
                        older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
                self.path.replace(self.path.with_name(f"{self.path.name}.1"))
            os.close(self._fd)
            self._fd = self._open()
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def flush(self) -> None:
        """Block until every queued record is written."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued and close the file (idempotent)."""
        if self._fd < 0:
            return
        self._queue.put(None)
        self._thread.join(timeout=10)
        os.close(self._fd)
        self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def feature_log_files(path: Path) -> list[Path]:
    """``path`` and its rotated files that exist, oldest first (``.N`` ... ``.1``, ``path``)."""
    path = Path(path)
    rotated: list[Path] = []
    n = 1
    while (older := path.with_name(f"{path.name}.{n}")).is_file():
        rotated.append(older)
        n += 1
    return [*reversed(rotated), *([path] if path.is_file() else [])]


def read_feature_log(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for each line of a feature log and its rotated files (oldest
    first; line numbers count within each file).

    Raises:
        DataError: no such log, or a line that is not a version-1 record (naming its file).
    """
    path = Path(path)
    files = feature_log_files(path)
    if not files:
        raise DataError("feature log not found", path=str(path))
    for file in files:
        yield from _read_one(file)


def _read_one(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open("rb") as fh:  # UTF-8 JSON lines; bytes, whatever the locale's encoding
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not JSON ({e.msg})", path=str(path), row=number) from None
            except UnicodeDecodeError:
                raise DataError("not UTF-8 text", path=str(path), row=number) from None
            if not isinstance(record, dict) or record.get("version") != FEATURE_LOG_VERSION:
                raise DataError(
                    f"not a feature-log record of version {FEATURE_LOG_VERSION}",
                    path=str(path),
                    row=number,
                )
            yield number, record
