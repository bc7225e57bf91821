"""`funnelrec experiment` through the CLI: a two-day run with light funnels writes the report;
a bad override is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from funnelrec.cli.app import app

runner = CliRunner()
LIGHT = """
[recall]
tune = []
[recall.channels.popular]
kind = "popular"
[recall.merge]
quotas = {}
[rank]
enabled = false
"""


def test_experiment_runs_and_reports(tmp_path: Path) -> None:
    config = tmp_path / "light.toml"
    config.write_text(LIGHT)
    out = tmp_path / "exp"
    args = ["experiment", "--out", str(out), "--config", str(config), "--days", "2",
            "--interactions", "8000",
            "--treatment-set", "recall.channels.popular.mode=global"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "decision:" in result.output
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["decision"] in {"ship", "keep control", "no decision", "stop"}
    assert len(analysis["daily"]) == 2 and (out / "report.html").is_file()
    assert (out / "outcomes.parquet").is_file()


def test_a_bad_override_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["experiment", "--out", str(tmp_path / "x"), "--control-set", "rank.nope=1"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "nope" in result.output
