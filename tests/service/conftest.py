"""One tiny artifact (simulated 8k rows, every channel, a DeepFM ranker) shared by the service
tests, plus helpers to start servers and Redis on free loopback ports."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from funnelrec.serve.launch import free_port, serve_command

TINY_OVERRIDES = [
    "recall.channels.two_tower.train.epochs=1",
    "recall.channels.two_tower.text.n_features=512",
    "recall.channels.content.encoder.n_features=512",
    "rank.model.kind=deepfm",
    "rank.train.loop.epochs=1",
    "rank.samples.max_train_samples=20000",
    "rank.fusion.trials=3",
    "rank.train.health=false",
    "eval.latency_requests=0",
    "eval.rerank_sweep_queries=0",
    "eval.max_queries=50",
    # These tests serve every stage; whether a stage is kept is tested in test_guards.py.
    "guards.enabled=false",
]


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved artifact folder (with its golden set). Treat as read-only: copy to modify."""
    from funnelrec.config import load_config
    from funnelrec.data.simulator import SimulatorConfig, simulate
    from funnelrec.eval.protocol import run_experiment
    from funnelrec.pipeline.persist import save_recommender

    sim = simulate(SimulatorConfig.for_interactions(8_000, seed=1))
    result = run_experiment(
        sim.interactions, sim.items, sim.users, load_config(overrides=TINY_OVERRIDES)
    )
    assert result.recommender.ranker is not None
    out = tmp_path_factory.mktemp("tiny") / "artifacts"
    save_recommender(result.recommender, out)
    return out


@pytest.fixture
def artifact_copy(tiny_artifacts: Path, tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    shutil.copytree(tiny_artifacts, out)
    return out


def wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"server at {base} not ready after {timeout_s} s: {log.read_text()}")


def _start_server(
    artifacts: Path, state_dir: Path, *extra: str
) -> tuple[subprocess.Popen, str, Path]:
    """``python -m funnelrec serve`` on a free loopback port, ready to answer; its output goes
    to ``state_dir/server.log`` (a pipe nobody reads would fill up and block the server)."""
    port = free_port()
    cmd = serve_command(artifacts, port, state_dir, *extra)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, log)
    except BaseException:
        _stop(proc)
        raise
    return proc, base, log


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """A running ``funnelrec serve`` process."""

    def __init__(self, artifacts: Path, state_dir: Path, *extra: str) -> None:
        self.state_dir = state_dir
        self.proc, self.base, self.log = _start_server(artifacts, state_dir, *extra)

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture(scope="session")
def start_server() -> Iterator[type[Server]]:
    """``start_server(artifacts, state_dir, *options) -> Server``; every server still running
    is stopped at the end of the session."""
    started: list[Server] = []

    class Tracked(Server):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)  # type: ignore[arg-type]
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free port (skipped when redis-server is not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.skip("redis-server did not start")
            time.sleep(0.05)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def make_service(tiny_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``make_service(**settings) -> RecommendService`` on a fresh load of the tiny artifact
    (free to modify), its clock starting at the artifact's last event; closed at teardown."""
    from funnelrec.serve.loading import load_for_serving
    from funnelrec.serve.service import RecommendService
    from funnelrec.serve.settings import ServeSettings

    made: list = []

    def make(**overrides: object) -> RecommendService:
        model = load_for_serving(tiny_artifacts)
        settings = ServeSettings(
            artifacts=tiny_artifacts,
            state_dir=tmp_path_factory.mktemp("service"),
            clock_offset_s=model.cutoff + 1 - int(time.time()),
            **overrides,  # type: ignore[arg-type]
        )
        service = RecommendService(settings, model=model)
        service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()
