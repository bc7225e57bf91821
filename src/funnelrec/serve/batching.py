"""Micro-batching on a worker's event loop: requests that wait together are answered together,
by one call.

A worker computes on its event loop (``inflight = 1``), so while it answers one batch the
next requests wait in their sockets. Answering them one at a time pays the funnel's fixed
costs (a few hundred small NumPy, polars and ONNX calls) for each; answered together they pay
them once (four requests in one funnel run: 3.4 ms of CPU each against 6.4 ms alone,
``benchmarks/request_cpu.py --batch``; docs/serving.md, "Sixth round").

When a batch starts:

- at once when ``max_batch`` requests wait, or when no client is expected;
- otherwise when the expected clients are in, or their window has passed. The window is
  ``wait_ratio`` times the last batch's compute time (0.5 by default: a batch never waits
  more than half as long as the previous one computed). A client is expected when it was
  answered less than a window ago and, the time before, came back within a window of its
  answer, counting from when the loop could read it (a request that arrived while a batch
  computed was back as soon as it could be read).

Why wait at all: a keep-alive client in a loop (a gateway, a page that fetches as the user
scrolls) sends its next request a millisecond or so after its answer. A batch that starts
without it leaves it to wait for the whole next batch, and the batches stay small (measured
with ``benchmarks/serve_load.py`` at 4 clients a worker: 1.3 requests a batch without the
wait, 3.7-4 with it). A client seen for the first time, or one that came back late, is never
waited for, so a lone client and sparse traffic are answered at once. It is the dynamic
batching of model servers (Triton's ``max_queue_delay``), with the delay spent only on
clients that were quick to come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def keep_alive_client(scope: Mapping[str, Any]) -> Hashable | None:
    """The client address of an HTTP/1.1 keep-alive request (the connection a client comes
    back on), else None: HTTP/1.0 or ``Connection: close`` will not come back on it."""
    client = scope.get("client")
    if client is None or scope.get("http_version") == "1.0":
        return None
    for name, value in scope.get("headers", ()):
        if name == b"connection" and value.lower() == b"close":
            return None
    return tuple(client)


class MicroBatcher(Generic[T, R]):
    """Answer submitted items in batches of at most ``max_batch`` with ``compute``.

    ``compute`` gets the items of a batch and returns one answer per item, in order: a
    result, or an exception that the item's :meth:`submit` raises. An exception raised by
    ``compute`` itself is raised by every item of the batch.

    Example:
        >>> async def main():
        ...     batcher = MicroBatcher(lambda xs: [x * 10 for x in xs], max_batch=8)
        ...     return await asyncio.gather(*(batcher.submit(x) for x in range(3)))
        >>> asyncio.run(main())
        [0, 10, 20]
    """

    def __init__(
        self,
        compute: Callable[[list[T]], Sequence[R | BaseException]],
        max_batch: int,
        *,
        wait_ratio: float = 0.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if wait_ratio < 0:
            raise ValueError(f"wait_ratio must be >= 0, got {wait_ratio}")
        self._compute = compute
        self._max_batch = max_batch
        self._wait_ratio = wait_ratio
        self._window = 0.0  # how long a client may take to come back: a part of the last batch
        self._pending: list[tuple[T, asyncio.Future[R], Hashable | None]] = []
        self._answered_at: dict[Hashable, float] = {}  # answered, not back yet, not late
        self._quick: set[Hashable] = set()  # came back within the window the last time
        self._handle: asyncio.Handle | None = None
        self._due_now = False
        self._free_at = 0.0  # when the last batch's computation ended

    async def submit(self, item: T, client: Hashable | None = None) -> R:
        """``item``'s answer, computed with the items waiting with it. ``client`` names the
        connection it came on (:func:`keep_alive_client`; None: not coming back)."""
        loop = asyncio.get_running_loop()
        if client is not None:
            answered = self._answered_at.pop(client, None)
            # A request that arrived while a batch computed was read when it ended: it was
            # back as soon as the loop could read it, however long that batch took.
            if answered is not None and self._now() - max(answered, self._free_at) <= self._window:
                self._quick.add(client)
            else:
                self._quick.discard(client)
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future, client))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._due_now:
            return
        now = self._now()
        deadline = self._expected_until(now)
        if len(self._pending) >= self._max_batch or deadline is None:
            if self._handle is not None:
                self._handle.cancel()
            # After this pass of the loop: the requests read in it join the batch.
            self._handle = loop.call_soon(self._run_batch, loop)
            self._due_now = True
        elif self._handle is None:
            self._handle = loop.call_later(deadline - now, self._run_batch, loop)

    def _expected_until(self, now: float) -> float | None:
        """The latest time an expected client is waited for (None: nobody is expected)."""
        times = [max(at, self._free_at) for c, at in self._answered_at.items() if c in self._quick]
        deadline = max(times) + self._window if times else now
        return deadline if deadline > now else None

    def _forget_late(self, now: float) -> None:
        """Clients not back within the window after the loop could read them are not
        expected any more, and not quick when they come back."""
        for client, at in list(self._answered_at.items()):
            if now - max(at, self._free_at) > self._window:
                del self._answered_at[client]
                self._quick.discard(client)

    def _run_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle, self._due_now = None, False
        start = self._now()
        self._forget_late(start)  # before computing: the loop cannot read meanwhile
        batch = self._pending[: self._max_batch]
        del self._pending[: self._max_batch]
        live = [entry for entry in batch if not entry[1].done()]  # not cancelled meanwhile
        if live:
            self._answer(live)
        now = self._free_at = self._now()
        self._window = self._wait_ratio * (now - start)
        for _, _, client in live:
            if client is not None:
                self._answered_at[client] = now
        if self._pending:  # more than max_batch were waiting
            self._schedule(loop)

    @staticmethod
    def _now() -> float:
        # Not loop.time(): uvloop's clock ticks in milliseconds, as coarse as the waits.
        return time.perf_counter()

    def _answer(self, batch: list[tuple[T, asyncio.Future[R], Hashable | None]]) -> None:
        try:
            answers = self._compute([item for item, _, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for a batch of {len(batch)}")
        except BaseException as e:  # every request of the batch fails with it
            for _, future, _ in batch:
                future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        for (_, future, _), answer in zip(batch, answers, strict=True):
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
