"""A loaded artifact is warmed up before it serves: requests of its most active users and of an
unknown user run through the request path once, unrecorded, and a failure there is logged,
never raised (the real requests' own error handling applies)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import funnelrec.serve.loading as loading
from funnelrec.serve.loading import WARM_UP_USERS, load_for_serving


def test_loading_for_serving_runs_the_warm_up_requests(
    tiny_artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[str, bool, int]] = []
    real = loading.run_request

    def counted(recommender: Any, spec: Any, popularity: Any, context: Any) -> Any:
        result = real(recommender, spec, popularity, context)
        served.append((spec.user_id, result[0].known_user, result[0].top.height))
        return result

    monkeypatch.setattr(loading, "run_request", counted)
    model = load_for_serving(tiny_artifacts)
    assert len(served) == WARM_UP_USERS + 1
    assert [known for _, known, _ in served] == [True] * WARM_UP_USERS + [False]
    assert all(height > 0 for _, _, height in served)  # every warm-up request served a list
    assert served[0][0] in model.user_index


def test_a_failing_warm_up_is_logged_and_the_artifact_still_loads(
    tiny_artifacts: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(loading, "run_request", broken)
    with caplog.at_level(logging.WARNING, logger="funnelrec.serve.loading"):
        model = load_for_serving(tiny_artifacts)
    assert model.recommender is not None
    assert "warm-up request failed" in caplog.text
