"""``funnelrec serve``: check the artifact, then run uvicorn with one or several workers.

With one worker the app runs in this process on the artifact already loaded and checked here.
With several, uvicorn spawns worker processes that rebuild the app from the settings passed in
the environment (``FUNNELREC_SERVE_SETTINGS``, read only by :func:`worker_app`, the workers'
entry point) and prometheus_client runs in multiprocess mode.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Literal

from fastapi import FastAPI
from pydantic import ValidationError

from funnelrec.errors import ConfigError
from funnelrec.serve.settings import ServeSettings
from funnelrec.serve.startup import WORKER_START_S

SETTINGS_ENV = "FUNNELREC_SERVE_SETTINGS"
logger = logging.getLogger(__name__)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(artifacts: Path, port: int, state_dir: Path, *extra: str) -> list[str]:
    """The ``funnelrec serve`` command line (this interpreter) that tests and the load
    benchmark start as a subprocess, with the artifact's own clock."""
    return [
        sys.executable,
        "-m",
        "funnelrec",
        "serve",
        "--artifacts",
        str(artifacts),
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--clock",
        "artifact",
        *extra,
    ]


def serve_settings(**options: object) -> ServeSettings:
    """``ServeSettings(**options)``; an invalid value is one :class:`ConfigError` line.

    Raises:
        ConfigError: names the first invalid option (secrets are never echoed back).
    """
    try:
        return ServeSettings(**options)
    except ValidationError as e:
        first = e.errors()[0]
        name = ".".join(str(p) for p in first["loc"]).replace("_", "-")
        raise ConfigError(f"--{name}: {first['msg']}") from None


def serve(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    clock: Literal["wall", "artifact"] = "wall",
    log_level: str = "warning",
) -> None:
    """Load + self-check ``settings.artifacts`` (raising a FunnelrecError that explains a
    refusal), then serve until interrupted.

    ``clock="artifact"`` starts the service's 'now' at the artifact's as-of time (its last
    event + 1 s) and lets it run from there: for artifacts trained on replayed or simulated
    data, whose time windows would otherwise all be empty.
    """
    import uvicorn

    from funnelrec.serve.app import create_app
    from funnelrec.serve.loading import load_for_serving
    from funnelrec.serve.security import check_root
    from funnelrec.serve.service import RecommendService
    from funnelrec.serve.store import open_store

    if settings.admin_token:  # before the (slow) load: a bad root is an option mistake
        check_root(settings.root, settings.artifacts)
    else:
        logger.warning("admin endpoints off (no admin token): hot reload is disabled")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    model = load_for_serving(settings.artifacts, check=settings.self_check)
    if clock == "artifact":
        offset = model.cutoff + 1 - int(time.time())
        settings = settings.model_copy(update={"clock_offset_s": offset})
    control = settings.control_file
    control.write_text(
        json.dumps(
            {"artifacts": str(settings.artifacts.resolve()), "generation": f"start-{uuid.uuid4()}"}
        )
    )
    common = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers <= 1:
        service = RecommendService(settings, model=model)
        uvicorn.run(create_app(settings, service), **common)  # type: ignore[arg-type]
        return
    del model  # each worker loads its own copy
    # The store's file, schema and WAL mode are set up once here, not by workers racing.
    open_store(settings.store_url, max_per_user=settings.max_events_per_user).close()
    metrics_dir = settings.metrics_dir or settings.state_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    threads = str(settings.torch_threads)
    for name in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(name, threads)  # read by the workers' imports
    shutil.rmtree(settings.ready_dir, ignore_errors=True)  # markers of an earlier start
    worker_settings = settings.model_copy(update={"metrics_dir": metrics_dir, "workers": workers})
    os.environ[SETTINGS_ENV] = worker_settings.model_dump_json()
    _notice_dead_workers_at_once()
    uvicorn.run(
        "funnelrec.serve.launch:worker_app",
        factory=True,
        workers=workers,
        # A worker imports torch and loads the artifact before it answers the supervisor's
        # pings; uvicorn's 5 s default killed and respawned workers on a loaded box forever.
        timeout_worker_healthcheck=WORKER_START_S,
        **{**common, "log_level": None, "log_config": _log_config(log_level)},  # type: ignore[arg-type]
    )


def _notice_dead_workers_at_once() -> None:
    """Make uvicorn's supervisor see a killed worker's health-check pipe close.

    The supervisor pings each worker every 0.5 s over a pipe and keeps both ends of it open
    in the parent, so a worker that dies while a ping is in flight is noticed only when the
    ping times out: ``timeout_worker_healthcheck``, which is :data:`WORKER_START_S` (120 s)
    here because slow starts must not be killed. Killed workers were replaced after 2+
    minutes in about one start test in ten. The child receives its end when it is spawned
    (the fd is passed at spawn time), so the parent closes its copy right after ``start``:
    the pipe then reports end-of-file as soon as the worker dies, and it is replaced at once.
    """
    from uvicorn.supervisors import multiprocess

    start = multiprocess.Process.start
    if getattr(start, "closes_child_end", False):
        return

    def start_and_close_child_end(self: multiprocess.Process) -> None:
        start(self)
        self.child_conn.close()

    start_and_close_child_end.closes_child_end = True  # type: ignore[attr-defined]
    multiprocess.Process.start = start_and_close_child_end  # type: ignore[method-assign]


class SupervisorEvents(logging.Filter):
    """Pass records at ``level`` and above, plus the supervisor's worker deaths, respawns and
    start failures promoted to WARNING: uvicorn logs those at INFO, so at the default level a
    worker that died and was replaced left no trace."""

    def __init__(self, level: str = "warning") -> None:
        super().__init__()
        self.level = logging.getLevelName(level.upper())

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        if "child process" in record.getMessage().lower():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        return False


def _log_config(level: str) -> dict:
    """uvicorn's logging config with :class:`SupervisorEvents` on its error log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"supervisor": {"()": SupervisorEvents, "level": level}}
    config["handlers"]["default"]["filters"] = ["supervisor"]
    config["loggers"]["uvicorn.error"]["level"] = "INFO"  # the filter decides
    config["loggers"]["uvicorn.access"]["level"] = level.upper()
    return config


def worker_app() -> FastAPI:
    """Entry point of a uvicorn worker process (``factory=True``)."""
    from funnelrec.serve.app import create_app

    return create_app(ServeSettings.model_validate_json(os.environ[SETTINGS_ENV]))
