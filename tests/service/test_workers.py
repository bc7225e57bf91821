"""Multi-worker serving starts reliably and heals: two workers on a fresh state folder start
every time (no race over the event store's set-up, no health-check respawn loop while a worker
imports and loads), and a killed worker is replaced, with a warning in the normal log.

``FUNNELREC_WORKER_STARTS`` sets how many starts (default 3; the issue's check ran 20).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from funnelrec.serve.startup import arrived

STARTS = int(os.environ.get("FUNNELREC_WORKER_STARTS", "3"))


def _workers(parent: int) -> set[int]:
    """The uvicorn worker processes of ``parent`` (spawned by multiprocessing)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = set()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.add(int(child))
    return workers


def _wait_for(condition: Callable[[], bool], timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _kill_one_and_wait_for_its_replacement(parent: int, base: str, log: Path) -> int:
    """SIGKILL one worker; returns its pid once a new one serves in its place."""
    victim = min(_workers(parent))
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        workers = _workers(parent)
        return len(workers) == 2 and victim not in workers

    def both_serve() -> bool:  # fresh connections reach both workers
        url = f"{base}/v1/recommend"
        return all(
            httpx.post(url, json={"user_id": "x", "k": 3}, timeout=30).status_code == 200
            for _ in range(6)
        )

    assert _wait_for(replaced), f"workers {_workers(parent)}; log:\n{log.read_text()[-3000:]}"
    assert _wait_for(both_serve), log.read_text()[-3000:]
    return victim


def test_two_workers_start_every_time_and_a_killed_one_is_replaced(
    tiny_artifacts: Path, tmp_path: Path, start_server
) -> None:
    for attempt in range(STARTS):
        running = start_server(tiny_artifacts, tmp_path / f"serve{attempt}", "--workers", "2")
        parent = running.proc.pid
        victim = None
        try:
            assert _wait_for(lambda p=parent: len(_workers(p)) == 2)
            # Both loaded before either answered: /readyz answered, so both markers are there.
            assert arrived(tmp_path / f"serve{attempt}" / "workers-ready") == 2
            if attempt == 0:
                victim = _kill_one_and_wait_for_its_replacement(parent, running.base, running.log)
        finally:
            running.stop()
        if victim is not None:
            log = running.log.read_text()
            # uvicorn logs it at INFO; the launcher shows it at the default (warning) level.
            assert f"Child process [{victim}] died" in log and "WARNING" in log, log[-2000:]


def test_a_worker_killed_while_it_is_being_pinged_is_replaced_at_once(
    tiny_artifacts: Path, tmp_path: Path, start_server
) -> None:
    """The supervisor pings workers with a 120 s timeout (slow starts must not be killed). A
    worker that dies while a ping waits must be noticed at once, not after the timeout: a
    stopped worker cannot answer, so the next ping waits on it; then it is killed."""
    running = start_server(tiny_artifacts, tmp_path / "serve", "--workers", "2")
    parent = running.proc.pid
    try:
        assert _wait_for(lambda: len(_workers(parent)) == 2)
        victim = min(_workers(parent))
        os.kill(victim, signal.SIGSTOP)
        time.sleep(2)  # the supervisor's ping (every 0.5 s) is now waiting on the victim
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            workers = _workers(parent)
            return len(workers) == 2 and victim not in workers

        assert _wait_for(replaced, timeout_s=60), running.log.read_text()[-3000:]
    finally:
        running.stop()
