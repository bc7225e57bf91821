"""Requests answered together (``RecommendService.recommend_many``, the HTTP micro-batches)
get the answers they get one at a time: the same items in the same order, the same stage
columns up to float rounding, the same refusals and degradations; the replay agrees."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from funnelrec.serve.app import create_app
from funnelrec.serve.consistency import replay_feature_log
from funnelrec.serve.errors import RequestError
from funnelrec.serve.request import RequestSpec, batch_groups
from funnelrec.serve.service import RecommendCall

from .test_degradation import Broken


def _users(service, n: int) -> list[str]:
    return [str(u) for u in service.model.recommender.user_vocab.ids[:n].to_list()]


def _close(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6)
    return got == want


def _same_items(batched: dict, alone: dict) -> None:
    """Items, order and every column equal; floats up to the ranker's rounding (its matrix
    products see more rows in a batch)."""
    assert [i["item_id"] for i in batched["items"]] == [i["item_id"] for i in alone["items"]]
    for got, want in zip(batched["items"], alone["items"], strict=True):
        for key, value in want.items():
            if isinstance(value, dict):  # the per-task probabilities
                assert all(_close(got[key][t], p) for t, p in value.items()), (got, want)
            else:
                assert _close(got[key], value), (key, got, want)
    for key in ("user_id", "known_user", "history_len", "k", "degraded", "artifact_id"):
        assert batched[key] == alone[key], key


def _batches(service) -> dict[float, float]:
    """``{batch size: funnel runs}`` so far."""
    samples = service.metrics.batch_size.collect()[0].samples
    counts = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    out, below = {}, 0.0
    for le, cumulative in sorted(((float(k), v) for k, v in counts.items()), key=lambda x: x[0]):
        if cumulative > below:
            out[le] = cumulative - below
        below = cumulative
    return out


def test_batch_groups_share_k_and_scenario_one_request_per_user() -> None:
    specs = {
        0: RequestSpec("a", 10, 0),
        1: RequestSpec("b", 10, 0),
        2: RequestSpec("a", 10, 0),  # a again: the next batch
        3: RequestSpec("c", 5, 0),  # another k
        4: RequestSpec("d", 10, 0, scenario="detail"),  # another scenario
        5: RequestSpec("e", 10, 0, attributes={"age": 30}),  # own frames: alone
        6: RequestSpec("f", 10, 0, tags=["x"]),
        7: RequestSpec("g", 10, 0),  # unknown user: alone
        8: RequestSpec("h", 10, 0),
    }
    known = {n: n != 7 for n in specs}
    assert batch_groups(specs, known, 8) == [[0, 1, 8], [2], [3], [4], [5], [6], [7]]
    assert batch_groups(specs, known, 2) == [[0, 1], [2, 8], [3], [4], [5], [6], [7]]
    assert batch_groups(specs, known, 1) == [[n] for n in (0, 1, 2, 3, 4, 5, 6, 7, 8)]


def test_recommend_many_answers_as_one_at_a_time(make_service) -> None:
    service = make_service()
    users = _users(service, 5)
    alone = [service.recommend(u, 10) for u in users]
    before = _batches(service)
    batched = service.recommend_many([RecommendCall(u, 10) for u in users])
    for got, want in zip(batched, alone, strict=True):
        assert isinstance(got, dict)
        _same_items(got, want)
    after = _batches(service)
    assert after.get(6.0, 0) - before.get(6.0, 0) == 1  # one run of 5 (bucket <= 6)


def test_mixed_requests_refusals_and_unbatchable_ones_keep_their_own_answers(
    make_service,
) -> None:
    service = make_service()
    a, b, c = _users(service, 3)
    calls = [
        RecommendCall(a, 10),
        RecommendCall(b, 0),  # refused: k
        RecommendCall(a, 10),  # the same user twice: a second run
        RecommendCall("never-seen", 10, attributes={"age": 31}),  # cold start, alone
        RecommendCall(c, 5),
        RecommendCall(b, 10, attributes={"shoe_size": 3}),  # refused: unknown attribute
    ]
    answers = service.recommend_many(calls)
    assert isinstance(answers[1], RequestError) and answers[1].field == "k"
    assert isinstance(answers[5], RequestError) and answers[5].field == "attributes"
    for n in (0, 2, 3, 4):
        call = calls[n]
        alone = service.recommend(call.user_id, call.k, attributes=call.attributes)
        _same_items(answers[n], alone)  # type: ignore[arg-type]


def test_a_batch_with_a_failing_channel_is_answered_one_request_at_a_time(
    make_service, tiny_artifacts: Path
) -> None:
    """Each request is degraded as it would be alone (the channel dropped, counted once per
    request), and the replay agrees with what was served."""
    service = make_service()
    channels = service.model.recommender.channels
    channels["itemcf"] = Broken(channels["itemcf"], "retrieve")
    users = _users(service, 3)
    answers = service.recommend_many([RecommendCall(u, 10) for u in users])
    for answer in answers:
        assert isinstance(answer, dict)
        assert answer["degraded"] == ["recall.itemcf"] and len(answer["items"]) == 10
    assert service.metrics.degraded.labels("recall.itemcf", "error")._value.get() == 3
    service.feature_log.flush()
    report = replay_feature_log(tiny_artifacts, service.settings.feature_log_path)
    assert report.replayed == 3 and report.ok, [m.describe() for m in report.mismatches[:5]]


def test_concurrent_http_requests_are_answered_together_and_replay(
    make_service, tiny_artifacts: Path
) -> None:
    """Requests that reach the loop together share one funnel run; each response is the
    one-at-a-time answer and the feature log replays without a mismatch."""
    service = make_service()
    users = _users(service, 4)
    alone = {u: service.recommend(u, 10) for u in users}
    app = create_app(service.settings, service)

    async def main() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await asyncio.gather(
                    *(client.post("/v1/recommend", json={"user_id": u, "k": 10}) for u in users)
                )

    before = _batches(service)
    responses = asyncio.run(main())
    for user, response in zip(users, responses, strict=True):
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        _same_items(body, alone[user])
        assert body["timings_ms"]["queue"] >= 0
    after = _batches(service)
    assert after.get(4.0, 0) - before.get(4.0, 0) == 1, (before, after)
    service.feature_log.flush()
    report = replay_feature_log(tiny_artifacts, service.settings.feature_log_path)
    assert report.replayed == 8 and report.ok, [m.describe() for m in report.mismatches[:5]]


@pytest.mark.parametrize("max_batch", [1, 3])
def test_max_batch_caps_a_funnel_run(make_service, max_batch: int) -> None:
    service = make_service(max_batch=max_batch)
    service.recommend_many([RecommendCall(u, 10) for u in _users(service, 4)])
    runs = _batches(service)
    assert max(runs) <= max_batch and sum(size * n for size, n in runs.items()) >= 4


@pytest.mark.parametrize(
    ("option", "value"), [("--max-batch", "0"), ("--max-batch", "1000"), ("--batch-wait", "-1")]
)
def test_serve_refuses_a_bad_batching_option_in_one_line(
    tiny_artifacts: Path, option: str, value: str
) -> None:
    from typer.testing import CliRunner

    from funnelrec.cli.app import app as cli

    result = CliRunner().invoke(cli, ["serve", "--artifacts", str(tiny_artifacts), option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output and "Traceback" not in result.output
