"""Workers of one server start answering together.

uvicorn's workers share one listening socket and each accepts as soon as its own start-up
(import, artifact load, self-check) is done. The first worker ready therefore takes every
connection opened before its siblings are: the load benchmark's 8 keep-alive clients all
landed on one of the 2 workers in 2 starts out of 3 (measured with ``ss -tnp``), and since a
keep-alive connection stays with the worker that accepted it, half the machine idled for the
whole run (150 instead of ~350 requests/s). A load balancer's pooled connections would stick
the same way. So each worker, once loaded, leaves a marker in a folder the launcher empties
and waits until every worker has left one, or ``timeout_s`` passed (a sibling that cannot
start must not stop the others from serving).

A respawned worker finds its siblings' markers (and the dead worker's) and does not wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)
POLL_S = 0.05
WORKER_START_S = 120  # how long a worker may take to import and load before it is replaced


def arrived(folder: Path) -> int:
    """How many workers have left their marker in ``folder``."""
    return sum(1 for _ in folder.glob("*.ready"))


async def start_together(folder: Path, workers: int, timeout_s: float = WORKER_START_S) -> bool:
    """Leave this process's marker in ``folder``, then wait until ``workers`` markers are
    there; ``False`` when ``timeout_s`` passed first (logged; the worker serves anyway)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}.ready").touch()
    deadline = time.monotonic() + timeout_s
    while arrived(folder) < workers:
        if time.monotonic() >= deadline:
            logger.warning(
                "%d of %d workers loaded after %.0f s: this one starts serving without the others",
                arrived(folder),
                workers,
                timeout_s,
            )
            return False
        await asyncio.sleep(POLL_S)
    return True
