"""Run tracking and ``compare`` through the real CLI on small simulated data: the MLflow store
``funnelrec run --track`` writes is read back by MLflow's own client, and two runs with
different settings are compared from their folders and from their MLflow run ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from funnelrec.cli.app import app
from support.report_html import assert_readable_report

runner = CliRunner()
# Two cheap channels and no ranker: a run takes seconds, and still has a funnel table, a
# guard, warm/cold slices, intervals and a re-ranker whose method the second run changes.
FAST_CONFIG = """
[recall]
tune = []
[recall.channels.itemcf]
kind = "itemcf"
[recall.channels.popular]
kind = "popular"
[recall.merge]
k = 100
quotas = { itemcf = 70, popular = 30 }
[rank]
enabled = false
[eval]
max_queries = 150
latency_requests = 10
rerank_sweep_queries = 50
interval_resamples = 200
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tracked")
    data, config = root / "data", root / "fast.toml"
    config.write_text(FAST_CONFIG)
    result = runner.invoke(app, ["simulate", "--out", str(data), "--interactions", "20000"])
    assert result.exit_code == 0, result.output
    common = ["--data", str(data), "--config", str(config)]
    outputs: dict[str, Any] = {"root": root, "store": root / "runs" / "mlruns"}
    for name, extra in (("a", ["--track"]), ("b", ["--set", "rerank.method=mmr", "--track"])):
        out = root / "runs" / name
        result = runner.invoke(app, ["run", *common, "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        assert "tracked: MLflow run" in result.output
        outputs[name] = out
    return outputs


def _client_and_runs(store: Path) -> tuple[Any, dict[str, Any]]:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{store / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        found = mlflow.search_runs(experiment_names=["funnelrec"], output_format="list")
    finally:
        mlflow.set_tracking_uri(previous)
    return MlflowClient(uri), {run.info.run_name: run for run in found}


def test_mlflow_reads_back_params_metrics_and_files(runs: dict[str, Any]) -> None:
    client, tracked = _client_and_runs(runs["store"])
    assert set(tracked) == {"a", "b"}
    run = tracked["a"]
    metrics = json.loads((runs["a"] / "metrics.json").read_text())
    assert run.info.status == "FINISHED"
    assert run.data.params["rerank.method"] == "dpp" and run.data.params["rank.enabled"] == "false"
    assert tracked["b"].data.params["rerank.method"] == "mmr"
    assert run.data.params["recall.merge.quotas.itemcf"] == "70"
    # The funnel table per stage, the guard decisions, each list's recall and its interval.
    merge = next(s for s in metrics["funnel"]["stages"] if s["stage"] == "merge")
    logged = run.data.metrics
    assert logged["funnel/stages/merge/ndcg_at_10"] == pytest.approx(merge["ndcg@10"])
    assert logged["funnel/stages/merge/candidates"] == pytest.approx(merge["candidates"])
    assert logged["recall/itemcf/recall_at_10"] == metrics["recall"]["itemcf"]["recall@10"]
    low, high = metrics["intervals"]["lists"]["merged"]["ndcg@10"]
    assert logged["intervals/lists/merged/ndcg_at_10/low"] == pytest.approx(low)
    assert logged["intervals/lists/merged/ndcg_at_10/high"] == pytest.approx(high)
    for guard in metrics["guards"]:
        decision = "kept" if guard["kept"] else "bypassed"
        assert run.data.tags[f"guard.{guard['stage']}"] == decision
        assert logged[f"guards/{guard['stage']}/kept"] == float(guard["kept"])
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "config.json", "report", "artifacts"} <= files
    report = {f.path for f in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/recall.png"} <= report
    manifest = client.download_artifacts(run.info.run_id, "artifacts/manifest.json")
    local = (runs["a"] / "artifacts" / "manifest.json").read_text()
    assert json.loads(Path(manifest).read_text()) == json.loads(local)


def test_the_report_a_tracked_run_renders_reads_well(runs: dict[str, Any]) -> None:
    page = (runs["a"] / "report" / "index.html").read_text()
    assert "Do-no-harm guards" in page and "Warm and cold slices" in page
    assert_readable_report(page)


def test_compare_shows_the_changed_setting_and_metrics(runs: dict[str, Any]) -> None:
    html = runs["root"] / "compare.html"
    args = ["compare", str(runs["a"]), str(runs["b"]), "--html", str(html)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "rerank.method" in result.output and "mmr" in result.output
    assert "reranked ndcg@10" in result.output and "intervals overlap" in result.output
    page = html.read_text()
    assert "<td>rerank.method</td><td>dpp</td><td>mmr</td>" in page
    assert_readable_report(page)


def test_compare_reads_tracked_runs_by_id(runs: dict[str, Any]) -> None:
    _, tracked = _client_and_runs(runs["store"])
    ids = [tracked[name].info.run_id for name in ("a", "b")]
    result = runner.invoke(
        app, ["compare", *ids, "--track-uri", str(runs["store"])], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert f"MLflow run {ids[0]}" in result.output and "rerank.method" in result.output


@pytest.mark.parametrize("case", ["missing", "not_a_run", "unknown_id", "same"])
def test_compare_bad_input_is_one_line_exit_2(runs: dict[str, Any], case: str) -> None:
    empty = runs["root"] / "empty"
    empty.mkdir(exist_ok=True)
    args = {
        "missing": [str(runs["root"] / "nope"), str(runs["a"])],
        "not_a_run": [str(runs["a"]), str(empty)],
        "unknown_id": [str(runs["a"]), "f" * 32, "--track-uri", str(runs["store"])],
        "same": [str(runs["a"]), str(runs["a"])],
    }[case]
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_bad_tracking_uri_fails_before_the_run(runs: dict[str, Any]) -> None:
    out = runs["root"] / "never"
    args = ["run", "--data", str(runs["root"] / "data"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--track-uri", "bogus://nowhere"])
    assert result.exit_code == 2 and "tracking at bogus://nowhere" in result.output
    assert not out.exists()


def _runs_by_command(store: Path) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("funnelrec")
    found = client.search_runs([experiment.experiment_id])
    return {"client": client, **{run.data.tags["funnelrec.command"]: run for run in found}}


def test_train_is_tracked_with_only_the_artifact_summary(runs: dict[str, Any]) -> None:
    store, out = runs["root"] / "store_train", runs["root"] / "models" / "m"
    args = [
        "train",
        "--data",
        str(runs["root"] / "data"),
        "--config",
        str(runs["root"] / "fast.toml"),
    ]
    extra = ["--out", str(out), "--track-uri", str(store), "--set", "tracking.log_artifacts=false"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    tracked = _runs_by_command(store)
    run = tracked["train"]
    summary = json.loads((out / "train_summary.json").read_text())
    assert run.data.metrics["interactions"] == summary["interactions"]
    assert run.data.params["recall.merge.quotas.popular"] == "30"
    files = {f.path for f in tracked["client"].list_artifacts(run.info.run_id, "artifacts")}
    assert "artifacts/manifest.json" in files and "artifacts/channels" not in files


def test_experiment_is_tracked_with_both_arms(runs: dict[str, Any]) -> None:
    config, store = runs["root"] / "light.toml", runs["root"] / "store_experiment"
    config.write_text(LIGHT_EXPERIMENT)
    out = runs["root"] / "experiment"
    args = ["experiment", "--out", str(out), "--config", str(config), "--days", "2",
            "--interactions", "8000", "--treatment-set", "recall.channels.popular.mode=global",
            "--track-uri", str(store)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    tracked = _runs_by_command(store)
    run = tracked["experiment"]
    assert run.data.params["control.recall.channels.popular.mode"] == "recent"
    assert run.data.params["treatment.recall.channels.popular.mode"] == "global"
    analysis = json.loads((out / "analysis.json").read_text())
    assert run.data.tags["funnelrec.decision"] == analysis["decision"]
    files = {f.path for f in tracked["client"].list_artifacts(run.info.run_id)}
    assert {"report.html", "analysis.json", "config_control.json"} <= files


LIGHT_EXPERIMENT = """
[recall]
tune = []
[recall.channels.popular]
kind = "popular"
[recall.merge]
quotas = {}
[rank]
enabled = false
"""
