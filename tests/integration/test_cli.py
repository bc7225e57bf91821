"""End-to-end through the real CLI on small simulated data, and bad input as a new user types it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from funnelrec.cli.app import app
from support.report_html import assert_readable_report

runner = CliRunner()
KS = (10, 20, 50, 100, 200)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    result = runner.invoke(app, ["simulate", "--out", str(out), "--interactions", "30000"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def run_dir(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    # Every stage is exercised here; the guards' decisions are tested on their own below.
    args = ["run", "--data", str(sim_dir), "--out", str(out), "--set", "guards.enabled=false"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_a_channel_that_serves_nobody_is_reported_silent(sim_dir: Path, tmp_path: Path) -> None:
    """Without onboarding tags the onboarding channel returns nothing: reported as silent,
    not as a row of zeros."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("interactions", "items"):
        (data / f"{name}.parquet").write_bytes((sim_dir / f"{name}.parquet").read_bytes())
    pl.read_parquet(sim_dir / "users.parquet").drop("tags").write_parquet(data / "users.parquet")
    fast = ["--set", "rank.enabled=false", "--set", "recall.channels.two_tower.train.epochs=1"]
    args = ["run", "--data", str(data), "--out", str(tmp_path / "out"), *fast]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "onboarding" in metrics["silent_channels"]
    assert "onboarding" not in metrics["recall"]
    assert "channel 'onboarding' silent" in result.output


def test_run_records_the_guard_decisions(sim_dir: Path, tmp_path: Path) -> None:
    fast = ["--set", "recall.channels.two_tower.train.epochs=1", "--set", "eval.max_queries=100"]
    result = runner.invoke(app, ["run", "--data", str(sim_dir), "--out", str(tmp_path), *fast])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # eval.max_queries: a sample of 100 of the held-out users, and how many there were.
    assert metrics["split"]["n_queries"] == 100 < metrics["split"]["n_held_out_users"]
    stages = [g["stage"] for g in metrics["guards"]]
    assert stages[0] == "merge" and "rank" in stages and "rerank" in stages
    assert "guard rank:" in result.output
    manifest = json.loads((tmp_path / "artifacts" / "manifest.json").read_text())
    assert [g["stage"] for g in manifest["guards"]] == stages
    # Acceptance (issue 18) on a real report with judged guards: no raw floats, no "None".
    assert runner.invoke(app, ["report", str(tmp_path)]).exit_code == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "Do-no-harm guards" in page and "Warm and cold slices" in page
    assert_readable_report(page)


def test_run_writes_metrics(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"itemcf", "content", "demographic", "onboarding", "popular", "merged"} <= set(
        metrics["recall"]
    )
    assert metrics["silent_channels"] == {}
    # The simulator's users chose onboarding tags: the channel recalls something.
    assert metrics["recall"]["onboarding"]["recall@200"] > 0
    for list_name, values in metrics["recall"].items():
        # the re-ranked list is at most rerank.pool (100) long
        for k in KS if list_name != "reranked" else [k for k in KS if k <= 100]:
            for name in ("recall", "hit", "ndcg", "mrr"):
                assert 0.0 <= values[f"{name}@{k}"] <= 1.0
    assert metrics["split"]["kind"] == "temporal"
    assert 0 < metrics["split"]["n_queries"] == metrics["split"]["n_held_out_users"]
    assert "fit.itemcf" in metrics["timings_s"]
    assert (run_dir / "artifacts" / "manifest.json").is_file()


def test_run_includes_the_ranking_stage(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rank = metrics["rank"]
    trained, dropped = rank["training"]["tasks"], rank["training"].get("dropped_tasks", {})
    # Every task the log supports is modelled, unless too few training positives (reported).
    assert "click" in trained and set(trained) | set(dropped) == {"click", "cart", "order"}
    assert all(n < 50 for n in dropped.values())
    for task in trained:
        assert rank[task]["auc_low"] <= rank[task]["auc"] <= rank[task]["auc_high"]
        assert 0.0 <= rank[task]["gauc"] <= 1.0 or rank[task]["gauc"] != rank[task]["gauc"]
        assert rank[task]["logloss"] > 0
    for k in KS:
        assert 0.0 <= rank["list"][f"ndcg@{k}"] <= 1.0
        assert 0.0 <= rank["list"][f"recall_order_ndcg@{k}"] <= 1.0
    assert "ranked" in metrics["recall"]
    assert "fit.rank" in metrics["timings_s"]
    assert (run_dir / "artifacts" / "rank" / "ranker.npz").is_file()
    assert (run_dir / "diagnostics" / "diagnostics.jsonl").is_file()


def test_run_reports_the_funnel_stage_by_stage(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    stages = {row["stage"]: row for row in metrics["funnel"]["stages"]}
    assert list(stages) == ["recall", "merge", "rank", "rerank"]
    # Each stage hands on a subset of what it received.
    assert stages["recall"]["candidate_recall"] >= stages["merge"]["candidate_recall"]
    assert stages["merge"]["candidate_recall"] >= stages["rank"]["candidate_recall"]
    for stage in ("merge", "rank", "rerank"):
        assert 0.0 <= stages[stage]["ild@10"] <= 2.0
        assert 0.0 <= stages[stage]["category_coverage@10"] <= 1.0
        assert stages[stage]["p50_ms"] <= stages[stage]["p99_ms"]
    assert "reranked" in metrics["recall"]
    assert "recall@200" not in metrics["recall"]["reranked"]  # longer than rerank.pool
    shares = metrics["funnel"]["channels"]
    assert sum(v["share"] for v in shares.values()) == pytest.approx(1.0)
    sweep = metrics["rerank"]
    assert sweep["tradeoff"]["mmr"][0]["param"] == 1.0
    # lambda = 1 is the ranked order: same accuracy as no re-ranking.
    assert sweep["tradeoff"]["mmr"][0]["ndcg@10"] == pytest.approx(sweep["baseline"]["ndcg@10"])
    assert sweep["tradeoff"]["mmr"][-1]["ild@10"] > sweep["baseline"]["ild@10"]
    assert metrics["latency_ms"]["total"]["p99"] > 0


def test_report_renders_html_with_plots(run_dir: Path) -> None:
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    page = (run_dir / "report" / "index.html").read_text()
    for plot in ("tradeoff.png", "recall.png", "channels.png", "latency.png"):
        assert (run_dir / "report" / plot).read_bytes()[:4] == b"\x89PNG"
    assert "Funnel, stage by stage" in page and 'alt="recall plot"' in page
    # Acceptance (issue 18): no raw floats, no "None" cells, one self-contained file.
    assert_readable_report(page)


def test_report_of_a_folder_without_metrics_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "no metrics.json" in result.output


def test_run_with_overrides_and_csv(sim_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "csv"
    data.mkdir()
    pl.read_parquet(sim_dir / "interactions.parquet").write_csv(data / "interactions.csv")
    result = runner.invoke(
        app,
        [
            "run",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--set",
            "split.kind=leave_last_out",
            "--set",
            "eval.max_queries=200",
            "--set",
            "guards.enabled=false",  # the rank metrics below need the ranker kept
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["split"]["kind"] == "leave_last_out"
    assert metrics["split"]["n_queries"] == 200
    # The held-out events label the ranked candidates (not only events after the cutoff).
    assert metrics["rank"]["candidates"]["click"]["positive_rate"] > 0
    # No items table: the channels that need one are skipped and say why, never silently.
    assert {"content", "onboarding"} <= set(metrics["skipped_channels"])
    assert "skipped" in result.output


def test_recommend_known_and_unknown_users(run_dir: Path, sim_dir: Path, tmp_path: Path) -> None:
    users = pl.read_parquet(sim_dir / "interactions.parquet")["user_id"].unique().head(5)
    users_file = tmp_path / "users.csv"
    pl.DataFrame({"user_id": [*users.cast(pl.String).to_list(), "never-seen"]}).write_csv(
        users_file
    )
    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app,
        [
            "recommend",
            "--artifacts",
            str(run_dir / "artifacts"),
            "--users",
            str(users_file),
            "--k",
            "7",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    recs = pl.read_csv(out, schema_overrides={"user_id": pl.String})
    assert recs.columns == ["user_id", "item_id", "rank", "score", "source"]
    counts = dict(recs.group_by("user_id").len().iter_rows())
    assert counts == {u: 7 for u in [*users.cast(pl.String).to_list(), "never-seen"]}
    # No history: only channels that work from attributes alone may answer (the two-tower
    # user tower embeds the unknown-attribute profile).
    assert set(recs.filter(pl.col("user_id") == "never-seen")["source"]) <= {
        "popular",
        "demographic",
        "two_tower",
    }


def test_recommend_says_when_k_exceeds_what_the_lists_hold(
    run_dir: Path, sim_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users = pl.read_parquet(sim_dir / "interactions.parquet")["user_id"].unique().head(2)
    users_file = tmp_path / "users.csv"
    pl.DataFrame({"user_id": users.cast(pl.String)}).write_csv(users_file)
    out = tmp_path / "recs.csv"
    args = ["recommend", "--artifacts", str(run_dir / "artifacts"), "--users", str(users_file)]
    result = runner.invoke(app, [*args, "--k", "150", "--out", str(out)])
    assert result.exit_code == 0, result.output
    counts = set(dict(pl.read_csv(out).group_by("user_id").len().iter_rows()).values())
    assert counts == {100}  # the re-ranker's pool
    assert "--k 150: each list holds at most 100 items" in caplog.text


def test_recommend_new_users_with_tags_and_attributes(
    run_dir: Path, sim_dir: Path, tmp_path: Path
) -> None:
    items = pl.read_parquet(sim_dir / "items.parquet")
    category = items["category"][0]
    users_file = tmp_path / "new.csv"
    pl.DataFrame(
        {"user_id": ["n1", "n2"], "tags": [category, ""], "age": [25, 40], "gender": ["f", "m"]}
    ).write_csv(users_file)
    out = tmp_path / "recs.csv"
    args = ["recommend", "--artifacts", str(run_dir / "artifacts"), "--users", str(users_file)]
    result = runner.invoke(app, [*args, "--k", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = pl.read_csv(out)
    tagged = recs.filter(pl.col("user_id") == "n1")
    assert tagged.height == 5
    assert "onboarding" in set(tagged["source"])
    onboarded = tagged.filter(pl.col("source") == "onboarding")["item_id"]
    chosen = items.filter(pl.col("item_id").is_in(onboarded.implode()))["category"]
    assert set(chosen) == {category}


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.parent


BAD_INPUTS = {
    "wrong path": (lambda tmp: tmp / "does-not-exist", "does-not-exist"),
    "empty file": (lambda tmp: _write(tmp / "e" / "interactions.csv", ""), "interactions.csv"),
    "missing column": (
        lambda tmp: _write(tmp / "m" / "interactions.csv", "user_id,item_id,event\n1,2,click\n"),
        "timestamp",
    ),
    "bad timestamp": (
        lambda tmp: _write(
            tmp / "t" / "interactions.csv",
            "user_id,item_id,timestamp,event,value\n1,2,100,click,1\n1,3,yesterday,click,1\n",
        ),
        "row 3",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_data_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    make, expected = BAD_INPUTS[case]
    data = make(tmp_path)
    result = runner.invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert expected in result.output


def test_unknown_format_and_bad_override(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "--format", "nope", str(tmp_path), str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "movielens-100k" in result.output
    result = runner.invoke(
        app, ["run", "--data", str(tmp_path), "--out", str(tmp_path), "--set", "split.nope=1"]
    )
    assert result.exit_code == 2
    assert "split.nope" in result.output


def test_entry_point_exit_code_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "funnelrec", "run", "--data", str(tmp_path / "x"), "--out", "o"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_simulate_plants_periodic_interests_and_writes_their_ground_truth(tmp_path: Path) -> None:
    args = ["simulate", "--out", str(tmp_path), "--interactions", "20000"]
    result = runner.invoke(app, [*args, "--long-term-share", "0.3", "--span-days", "120"])
    assert result.exit_code == 0, result.output
    truth = pl.read_parquet(tmp_path / "periodic_interests.parquet")
    assert truth.height > 0 and "periodic interests" in " ".join(result.output.split())
    users = set(pl.read_parquet(tmp_path / "users.parquet")["user_id"].to_list())
    assert set(truth["user_id"].to_list()) <= users
    bad = runner.invoke(app, [*args, "--long-term-share", "2"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
