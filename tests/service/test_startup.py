"""Workers of one server start answering together (funnelrec.serve.startup)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from funnelrec.serve.startup import arrived, start_together


def test_a_worker_waits_for_its_siblings_markers(tmp_path: Path) -> None:
    folder = tmp_path / "ready"

    async def sibling_loads_later() -> None:
        await asyncio.sleep(0.3)
        (folder / "12345.ready").touch()

    async def both() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        sibling = asyncio.create_task(sibling_loads_later())
        together = await start_together(folder, workers=2, timeout_s=30)
        waited = loop.time() - start
        await sibling
        return together, waited

    together, waited = asyncio.run(both())
    assert together and waited >= 0.25 and arrived(folder) == 2


def test_a_sibling_that_never_loads_does_not_stop_this_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="funnelrec.serve.startup"):
        together = asyncio.run(start_together(tmp_path / "ready", workers=2, timeout_s=0.2))
    assert not together
    assert "1 of 2 workers loaded" in caplog.text


def test_a_respawned_worker_does_not_wait(tmp_path: Path) -> None:
    """The markers of the first start (the dead worker's included) are still there."""
    folder = tmp_path / "ready"
    folder.mkdir()
    for pid in (1, 2):
        (folder / f"{pid}.ready").touch()
    assert asyncio.run(start_together(folder, workers=2, timeout_s=0.01))
    assert arrived(folder) == 3
