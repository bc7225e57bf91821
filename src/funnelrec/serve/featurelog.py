"""Feature logging: one JSON line per served request (the request, the store events it read,
what each stage scored), written off the request path by a background thread.

Lines go to one file opened with ``O_APPEND`` and are written with one ``write`` each, so
several worker processes can share the file without interleaving lines.

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

import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

from funnelrec.errors import DataError

logger = logging.getLogger(__name__)
FEATURE_LOG_VERSION = 1


class FeatureLogger:
    """Appends records as JSON lines from a background thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=10_000)
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Queue one record; when the writer falls far behind, records are dropped (counted)
        rather than slowing requests down."""
        line = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
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
                os.write(self._fd, line)
            except OSError as e:
                logger.error("feature log %s: write failed: %s", self.path, e)
            finally:
                self._queue.task_done()

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


def read_feature_log(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for each line of a feature log.

    Raises:
        DataError: the file is missing or a line is not a version-1 record.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("feature log not found", path=str(path))
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not JSON ({e.msg})", path=str(path), row=number) from None
            if not isinstance(record, dict) or record.get("version") != FEATURE_LOG_VERSION:
                raise DataError(
                    f"not a feature-log record of version {FEATURE_LOG_VERSION}",
                    path=str(path),
                    row=number,
                )
            yield number, record
