"""Bad input through the real CLI (issue 12): every case is a one-line error with exit code 2,
or is handled and reported; never a traceback, never a half-written output folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from funnelrec.cli.app import app

runner = CliRunner()
T0 = 1_700_000_000
# Small and fast: no ranker, one two-tower epoch, few evaluation queries.
FAST = [
    "--set",
    "rank.enabled=false",
    "--set",
    "recall.channels.two_tower.train.epochs=1",
    "--set",
    "eval.max_queries=50",
    "--set",
    "eval.latency_requests=0",
    "--set",
    "eval.rerank_sweep_queries=0",
]


def _log(
    folder: Path,
    rows: int = 400,
    *,
    users: int = 30,
    items: int = 40,
    events: tuple[str, ...] = ("click", "impression"),
    extra: str = "",
) -> Path:
    """``folder/interactions.csv``: ``rows`` events an hour apart (plus ``extra`` lines)."""
    rnd = random.Random(rows)
    lines = ["user_id,item_id,timestamp,event"]
    for j in range(rows):
        user, item = rnd.randrange(users), rnd.randrange(items)
        lines.append(f"{user},{item},{T0 + 3600 * j},{rnd.choice(events)}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n" + extra)
    return folder


def _run(data: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["run", "--data", str(data), "--out", str(out), *FAST, *extra])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _one_line_error(exit_code: int, output: str) -> str:
    assert exit_code == 2, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    code, output = _run(_log(root / "data"), root / "run")
    assert code == 0, output
    return root / "run" / "artifacts"


# ------------------------------------------------------------------ funnelrec run
def test_dirty_data_is_cleaned_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One year-3000 timestamp, a repeated item row and a 1 MB id: the run succeeds, each
    problem is one warning (the id cut short) and metrics.json counts the dropped rows.

    The outlier used to stretch the time span: the temporal split then held out only it, or
    (a 0 or -5) left one training row and a traceback."""
    huge_id = "u" * 1_000_000
    data = _log(tmp_path / "data", extra=f"{huge_id},1,{T0 + 7200},click\n1,2,32503680000,click\n")
    (data / "items.csv").write_text(
        "item_id,category\n" + "".join(f"{i},c{i % 3}\n" for i in range(40)) + "7,c9\n"
    )
    code, output = _run(data, tmp_path / "out")
    assert code == 0, output
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert all(len(w) < 1_000 for w in warnings), "a value was printed whole"
    text = "\n".join(warnings)
    assert "(1000000 chars)" in text
    assert "outlier timestamps" in text and "first at row 403: 32503680000" in text
    assert "1-99% quantile range" in text  # the rule is named
    assert "1 row(s) repeat an earlier item_id (first at row 42: 7)" in text
    dropped = json.loads((tmp_path / "out" / "metrics.json").read_text())["data"]["dropped_rows"]
    assert dropped == {"interactions:outlier timestamp": 1, "items:repeated item_id": 1}


@pytest.mark.parametrize("timestamp", [-5, 0])
def test_an_early_outlier_timestamp_is_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, timestamp: int
) -> None:
    data = _log(tmp_path / "data", extra=f"1,2,{timestamp},click\n")
    code, output = _run(data, tmp_path / "out")
    assert code == 0, output
    assert "dropped 1 row(s) with outlier timestamps outside" in caplog.text
    assert f"first at row 402: {timestamp}" in caplog.text


def test_a_tiny_one_item_log_runs_with_the_impossible_stages_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Five rows of one item (a KeyError in the two-tower fit before): the channels and the
    ranker that cannot learn from it are skipped, each with its reason."""
    data = _log(tmp_path / "data", rows=5, items=1)
    code, output = _run(data, tmp_path / "out", "--set", "rank.enabled=true")
    assert code == 0, output
    assert "recall channel 'two_tower' skipped: two-tower channel: 1 training" in caplog.text
    assert "ranking stage skipped" in caplog.text
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "content" in metrics["skipped_channels"]


def test_a_tiny_one_user_log_is_one_line(tmp_path: Path) -> None:
    """Six rows of one user (a KeyError before): the split leaves nothing to evaluate."""
    data = _log(tmp_path / "data", rows=6, users=1)
    error = _one_line_error(*_run(data, tmp_path / "out", "--set", "rank.enabled=true"))
    assert "split of 6 rows leaves no held-out positive to evaluate on" in error
    assert not (tmp_path / "out").exists()


def test_an_all_impression_log_is_one_line_and_leaves_no_folder(tmp_path: Path) -> None:
    data = _log(tmp_path / "data", rows=60, events=("impression",))
    code, output = _run(data, tmp_path / "out")
    error = _one_line_error(code, output)
    assert "no positive interaction to learn from" in error and "'impression'" in error
    assert not (tmp_path / "out").exists(), "a failed run leaves no partial output folder"


def test_a_split_that_holds_nothing_out_is_one_line(tmp_path: Path) -> None:
    """Three rows: the temporal split's test side has no positive to score against."""
    data = _log(tmp_path / "data", rows=3, events=("click",))
    (data / "interactions.csv").write_text(
        f"user_id,item_id,timestamp,event\n1,1,{T0},click\n2,2,{T0 + 1},click\n"
        f"1,2,{T0 + 9},impression\n"
    )
    error = _one_line_error(*_run(data, tmp_path / "out"))
    assert "split of 3 rows leaves no held-out positive" in error


# ------------------------------------------------------------------ funnelrec recommend
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"user_id,age\n1,30\n\xe9t\xe9,40\n", "row 3: not valid UTF-8"),
        (b"1\n\xff\n", "row 2: not valid UTF-8"),
        (b"user_id,age\n", "only a header"),
        (b"user_id,age\n,31\n", "user_id"),
        (b"name,age\nx,1\n", "missing required column"),
    ],
)
def test_bad_users_files_are_one_line(
    artifacts: Path, tmp_path: Path, content: bytes, expected: str
) -> None:
    users = tmp_path / "users.csv"
    users.write_bytes(content)
    out = tmp_path / "recs.csv"
    args = ["recommend", "--artifacts", str(artifacts), "--users", str(users), "--out", str(out)]
    result = runner.invoke(app, args)
    assert "Traceback" not in result.output
    assert expected in _one_line_error(result.exit_code, result.output)
    assert not out.exists()


def test_a_repeated_user_is_served_once(
    artifacts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    users = tmp_path / "users.txt"
    users.write_text("1\n2\n1\n")
    out = tmp_path / "recs.csv"
    args = ["recommend", "--artifacts", str(artifacts), "--users", str(users), "--out", str(out)]
    result = runner.invoke(app, [*args, "--k", "3"])
    assert result.exit_code == 0, result.output
    assert "repeat an earlier user_id" in caplog.text
    assert "wrote 6 rows for 2 users" in result.output


# ------------------------------------------------------------------ funnelrec convert
def test_convert_drops_and_reports_an_outlier_timestamp(tmp_path: Path) -> None:
    rnd = random.Random(0)
    lines = [
        f"{rnd.randrange(20)},{rnd.randrange(30)},c{rnd.randrange(3)},pv,{1511539200 + 60 * j}"
        for j in range(300)
    ]
    src = tmp_path / "taobao"
    src.mkdir()
    (src / "UserBehavior.csv").write_text("\n".join([*lines, "1,1,c1,pv,0"]) + "\n")
    result = runner.invoke(app, ["convert", "--format", "taobao", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "outlier timestamp: 1" in result.output


def test_train_refuses_workers_with_the_spark_engine(tmp_path: Path) -> None:
    data = _log(tmp_path / "data")
    command = ["train", "--data", str(data), "--out", str(tmp_path / "art")]
    result = runner.invoke(app, [*command, "--workers", "2", "--engine", "spark"])
    assert "Traceback" not in result.output, result.output
    assert "do not combine" in _one_line_error(result.exit_code, result.output)
    assert not (tmp_path / "art").exists()
