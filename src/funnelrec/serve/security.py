"""What the service does against a hostile or careless client, without web-framework imports:
token comparison, the artifacts root that reloads are confined to, and a per-client
token-bucket rate limit (a plain ASGI middleware).

The FastAPI side (which endpoints need which token) is in :mod:`funnelrec.serve.app`.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funnelrec.errors import ConfigError
from funnelrec.serve.errors import RequestError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OUTSIDE_ROOT = "the reload path must be a folder inside the artifacts root"
# Probes of an orchestrator must keep answering however busy a client is.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret with the configured one."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def check_root(root: Path, artifacts: Path) -> None:
    """Refuse an artifacts root that confines nothing (``/``) or does not hold the served
    artifact (a reload of "the current artifact" would then be outside it).

    Raises:
        ConfigError: with the option to change.
    """
    if root == Path(root.anchor):
        raise ConfigError(
            f"the artifacts root would be {root} (the parent of --artifacts): reloads could "
            "load any folder on the host; pass --artifacts-root"
        )
    if not artifacts.resolve().is_relative_to(root):
        raise ConfigError(f"--artifacts {artifacts} is not inside --artifacts-root {root}")


def confine(root: Path, requested: str | Path) -> Path:
    """The folder ``requested`` names (relative paths: relative to ``root``), resolved through
    every symlink and ``..``, when it lies inside ``root``.

    Raises:
        RequestError: 403 with the same message whether or not the path exists (the answer
            must not probe the host's file system).
    """
    try:
        candidate = Path(requested)
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        inside = resolved.is_relative_to(root)
    except (OSError, RuntimeError, ValueError, TypeError):  # unreadable links, loops, NUL
        inside = False
    if not inside:
        raise RequestError(403, OUTSIDE_ROOT, field="path")
    return resolved


def shown(root: Path, path: Path | str) -> str:
    """``path`` as clients see it: relative to ``root`` (never the host's absolute layout)."""
    try:
        relative = Path(path).resolve().relative_to(root)
    except (OSError, RuntimeError, ValueError):
        return "<outside the artifacts root>"
    return relative.as_posix() or "."


def redact(root: Path, text: str) -> str:
    """``text`` (an error message) with the root's absolute prefix removed."""
    return text.replace(f"{root}/", "").replace(str(root), ".")


async def send_json(
    send: Send, status: int, body: dict, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with a JSON body from a plain ASGI middleware."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets per client: ``rate`` requests per second on average, bursts of up to
    ``burst``. The least recently seen clients are forgotten beyond ``max_clients`` (memory
    stays bounded under a flood of source addresses; a forgotten client starts full)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError(f"rate limit needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, client: str) -> float:
        """Take one token for ``client``: 0.0 when allowed, else the seconds until a token."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets[client] = bucket  # most recently seen last
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


class RateLimitMiddleware:
    """429 (JSON error body, ``Retry-After``) for a client over its rate, before the body is
    read or any work is done. Clients are told apart by the connection's peer address: behind
    a reverse proxy every request shares the proxy's address, so limit there instead."""

    def __init__(self, app: Any, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.acquire(str(client[0]) if client else "unknown")
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_json(
                send,
                429,
                {"error": f"rate limit exceeded: retry in {retry} s"},
                [(b"retry-after", str(retry).encode())],
            )
            return
        await self.app(scope, receive, send)
