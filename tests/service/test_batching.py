"""The micro-batcher: requests waiting together are answered by one call, at most
``max_batch`` at a time; a batch waits (up to ``max_wait_s``) only for a keep-alive client it
just answered; one request's error is its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from funnelrec.serve.batching import MicroBatcher, keep_alive_client


class Recorder:
    """``compute`` that records its batches: ``x -> x * 10``, a negative ``x`` refused;
    each batch takes ``seconds``."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.seconds = seconds

    def __call__(self, items: list[int]) -> Sequence[int | BaseException]:
        self.batches.append(list(items))
        time.sleep(self.seconds)
        return [ValueError(f"bad {x}") if x < 0 else x * 10 for x in items]


def test_requests_waiting_together_are_one_batch_capped_at_max_batch() -> None:
    compute = Recorder()

    async def main() -> list[int]:
        batcher = MicroBatcher(compute, max_batch=2)
        return await asyncio.gather(*(batcher.submit(x) for x in range(5)))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert compute.batches == [[0, 1], [2, 3], [4]]


def test_an_error_answer_fails_its_own_request_only() -> None:
    async def main() -> list[object]:
        batcher = MicroBatcher(Recorder(), max_batch=8)
        return await asyncio.gather(
            *(batcher.submit(x) for x in (1, -2, 3)), return_exceptions=True
        )

    first, second, third = asyncio.run(main())
    assert (first, third) == (10, 30)
    assert isinstance(second, ValueError) and str(second) == "bad -2"


def test_a_failing_compute_fails_every_request_of_its_batch() -> None:
    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("model gone")

    async def main() -> list[object]:
        batcher = MicroBatcher(broken, max_batch=8)
        return await asyncio.gather(*(batcher.submit(x) for x in (1, 2)), return_exceptions=True)

    assert [str(e) for e in asyncio.run(main())] == ["model gone", "model gone"]


def test_a_wrong_number_of_answers_is_an_error_not_a_hang() -> None:
    async def main() -> list[object]:
        batcher = MicroBatcher(lambda items: [1], max_batch=8)
        return await asyncio.gather(*(batcher.submit(x) for x in (1, 2)), return_exceptions=True)

    assert all("1 answers for a batch of 2" in str(e) for e in asyncio.run(main()))


def test_a_cancelled_request_is_left_out_of_its_batch() -> None:
    compute = Recorder()

    async def main() -> int:
        batcher = MicroBatcher(compute, max_batch=8)
        gone = asyncio.ensure_future(batcher.submit(1))
        kept = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0)  # both submitted
        gone.cancel()
        return await kept

    assert asyncio.run(main()) == 20
    assert compute.batches == [[2]]


def test_a_batch_waits_for_a_quick_client_it_just_answered() -> None:
    """A came back at once after its first answer, so after its second B's request waits
    (up to the window) for A's next one, and both are answered by one call."""
    compute = Recorder(seconds=0.02)

    async def main() -> None:
        batcher = MicroBatcher(compute, max_batch=8, wait_ratio=50)  # a 1 s window
        assert await batcher.submit(1, client="A") == 10  # nobody expected: at once
        assert await batcher.submit(2, client="A") == 20  # A came back within the window
        b = asyncio.ensure_future(batcher.submit(3, client="B"))
        await asyncio.sleep(0.05)
        assert not b.done()  # waiting for A
        assert await batcher.submit(4, client="A") == 40
        assert await b == 30

    asyncio.run(asyncio.wait_for(main(), timeout=5))
    assert compute.batches == [[1], [2], [3, 4]]


def test_the_wait_is_a_share_of_the_last_batch_compute_time() -> None:
    compute = Recorder(seconds=0.04)

    async def main() -> float:
        batcher = MicroBatcher(compute, max_batch=8, wait_ratio=2)  # ~80 ms
        await batcher.submit(1, client="A")
        await batcher.submit(2, client="A")
        start = time.perf_counter()
        await batcher.submit(3, client="B")  # A never comes back
        return time.perf_counter() - start - compute.seconds

    waited = asyncio.run(main())
    assert 0.06 <= waited < 1.0
    assert compute.batches == [[1], [2], [3]]


def test_no_wait_for_new_late_or_closing_clients() -> None:
    """Only a client that came back within the window last time, and was answered less than
    a window ago, is waited for: sparse traffic is answered at once."""
    compute = Recorder(seconds=0.01)

    async def main() -> list[float]:
        batcher = MicroBatcher(compute, max_batch=8, wait_ratio=20)  # a ~0.2 s window
        waits = []
        steps = [
            (1, "A", 0),  # new
            (2, "B", 0),  # A is new too: not expected
            (3, "A", 0.4),  # A late: not quick
            (4, "C", 0),  # so C does not wait for A
            (5, None, 0),  # no keep-alive client
            (6, "C", 0),  # C quick now, and not waiting for itself
            (7, "D", 0),  # C was quick, answered just now: D waits for it (capped)
        ]
        for x, client, pause in steps:
            await asyncio.sleep(pause)
            start = time.perf_counter()
            await batcher.submit(x, client)
            waits.append(time.perf_counter() - start - compute.seconds)
        return waits

    waits = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert [w < 0.1 for w in waits] == [True] * 6 + [False]
    assert compute.batches == [[1], [2], [3], [4], [5], [6], [7]]


def test_without_a_wait_ratio_nobody_is_waited_for() -> None:
    compute = Recorder(seconds=0.1)

    async def main() -> float:
        batcher = MicroBatcher(compute, max_batch=8)
        for x in (1, 2):
            await batcher.submit(x, client="A")
        start = time.perf_counter()
        await batcher.submit(3, client="B")
        return time.perf_counter() - start - compute.seconds

    assert asyncio.run(main()) < 0.03


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(Recorder(), max_batch=0)


ADDRESS = ("127.0.0.1", 5000)


@pytest.mark.parametrize(
    ("client", "version", "headers", "expected"),
    [
        (ADDRESS, "1.1", [], ADDRESS),
        (ADDRESS, "1.1", [(b"connection", b"Close")], None),
        (ADDRESS, "1.0", [], None),
        (None, "1.1", [], None),
    ],
)
def test_keep_alive_client_is_the_connection_a_client_comes_back_on(
    client: object, version: str, headers: list, expected: object
) -> None:
    scope = {"client": client, "http_version": version, "headers": headers}
    assert keep_alive_client(scope) == expected
