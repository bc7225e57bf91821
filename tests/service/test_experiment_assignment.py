"""--experiments: every request's user is assigned in each layer; the arm is returned and
logged; a bad experiments file is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from funnelrec.abtest.assignment import ExperimentPlan
from funnelrec.cli.app import app
from funnelrec.errors import ConfigError

PLAN = """
[[layers]]
name = "rerank"
[[layers.experiments]]
name = "dpp_theta"
buckets = [0, 1000]
arms = { control = 1, theta_080 = 1 }
"""


def test_requests_carry_and_log_their_arm(make_service, tmp_path: Path) -> None:
    plan = tmp_path / "experiments.toml"
    plan.write_text(PLAN)
    service = make_service(experiments=plan)
    users = service.model.recommender.user_vocab.ids[:20]
    answers = [service.recommend(u, 5) for u in users]
    expected = ExperimentPlan.from_toml(plan)
    for user, answer in zip(users, answers, strict=True):
        arm = expected.assign(str(user))["rerank"].arm
        assert answer["experiments"] == {"rerank": {"experiment": "dpp_theta", "arm": arm}}
    assert len({a["experiments"]["rerank"]["arm"] for a in answers}) == 2
    service.feature_log.flush()
    records = [json.loads(x) for x in service.feature_log.path.read_text().splitlines()]
    assert [r["experiments"] for r in records[-20:]] == [a["experiments"] for a in answers]
    assert make_service().recommend(users[0], 5)["experiments"] == {}  # no file, no arms


def test_a_bad_experiments_file_is_one_line(make_service, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[layers]]\nname = 3\n")
    with pytest.raises(ConfigError, match="bad.toml"):
        make_service(experiments=bad)
    result = CliRunner().invoke(
        app, ["serve", "--artifacts", str(tmp_path), "--experiments", str(bad)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "bad.toml" in result.output
