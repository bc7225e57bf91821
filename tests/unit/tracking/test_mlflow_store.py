"""The MLflow store: where it is, what a record puts in it, that it stays offline, and that
nothing imports MLflow while tracking is off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from funnelrec.cli.tracking import open_tracker
from funnelrec.config.tracking import TrackingConfig
from funnelrec.tracking.mlflow_store import (
    MlflowTracker,
    RunRecord,
    TrackingError,
    resolve_target,
    store_target,
)


def test_the_default_store_is_mlruns_beside_the_output(tmp_path: Path) -> None:
    target = resolve_target(TrackingConfig(), None, tmp_path / "runs" / "a")
    store = tmp_path / "runs" / "mlruns"
    assert target.uri == f"sqlite:///{store / 'mlflow.db'}"
    assert target.artifact_location == (store / "artifacts").as_uri()
    assert target.experiment == "funnelrec"


def test_a_uri_wins_over_the_config_and_sqlite_keeps_files_beside_it(tmp_path: Path) -> None:
    settings = TrackingConfig(uri=str(tmp_path / "configured"), experiment="x")
    assert resolve_target(settings, None, tmp_path).uri.endswith("configured/mlflow.db")
    db = tmp_path / "elsewhere" / "my.db"
    target = resolve_target(settings, f"sqlite:///{db}", tmp_path)
    assert target.artifact_location == (db.parent / "artifacts").as_uri()
    server = store_target("http://127.0.0.1:5000", "x")
    assert server.artifact_location is None  # the server decides


def test_tracking_is_off_unless_asked(tmp_path: Path) -> None:
    assert open_tracker(TrackingConfig(), None, None, tmp_path) is None
    assert open_tracker(TrackingConfig(mlflow=True), False, None, tmp_path) is None  # --no-track
    assert not (tmp_path.parent / "mlruns").exists()


def test_a_record_is_read_back_by_mlflow(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    (tmp_path / "plot.png").write_bytes(b"\x89PNG")
    tracker = MlflowTracker(store_target(str(tmp_path / "store"), "unit"))
    record = RunRecord(
        name="a",
        params={f"p{i}": str(i) for i in range(150)},  # more than one batch of params
        metrics={f"m/{i}": float(i) for i in range(1200)},  # more than one batch of metrics
        tags={"guard.rank": "kept"},
        files=[(tmp_path / "plot.png", "report")],
        documents={"config.json": {"seed": 3}},
    )
    run_id = tracker.log(record)
    run = MlflowClient(tracker.target.uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "a"
    assert len(run.data.params) == 150 and len(run.data.metrics) == 1200
    assert run.data.metrics["m/1199"] == 1199.0 and run.data.tags["guard.rank"] == "kept"
    into = tmp_path / "down"
    into.mkdir()
    config = tracker.download(run_id, "config.json", into)
    assert config is not None and json.loads(config.read_text()) == {"seed": 3}
    assert tracker.download(run_id, "metrics.json", into) is None
    with pytest.raises(TrackingError, match="tracking at sqlite"):
        tracker.download("0" * 32, "config.json", into)


def test_a_bad_uri_is_one_line() -> None:
    with pytest.raises(TrackingError, match=r"^tracking at bogus://x: ") as caught:
        MlflowTracker(store_target("bogus://x", "x"))
    assert "\n" not in str(caught.value)


# Run in a fresh interpreter: any socket connection attempted while MLflow is imported and a
# run is recorded fails the check (a SQLite store and telemetry off need none).
OFFLINE_CHECK = """
import json, socket, sys
attempts = []
def refuse(self, address, *args):
    attempts.append(str(address))
    raise OSError("network disabled in this test")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = lambda address, *a, **k: refuse(None, address)
from funnelrec.tracking.mlflow_store import MlflowTracker, RunRecord, store_target
tracker = MlflowTracker(store_target(sys.argv[1], "offline"))
tracker.log(RunRecord(name="x", params={"a": "1"}, metrics={"m": 1.0}))
from mlflow.telemetry.utils import is_telemetry_disabled
print(json.dumps({"attempts": attempts, "telemetry_off": is_telemetry_disabled()}))
"""


def test_recording_a_run_touches_no_network(tmp_path: Path) -> None:
    env_free = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no CI / pytest variables
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_CHECK, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_free,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"attempts": [], "telemetry_off": True}


def test_the_cli_and_config_import_no_mlflow() -> None:
    code = (
        "import sys, funnelrec.cli.app, funnelrec.config, funnelrec.tracking.records; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
