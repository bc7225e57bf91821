"""Hot reload of one worker process: an admin request loads a folder inside the artifacts
root in the background and swaps it in once it passed verification and the self-check; other
workers follow through the control file in the state dir.

Only a reload that succeeded is written to the control file: a refused artifact named there
would stop every (re)spawned worker from starting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from funnelrec.serve.errors import RequestError
from funnelrec.serve.loading import LoadedModel, load_for_serving
from funnelrec.serve.metrics import ServeMetrics
from funnelrec.serve.security import check_root, confine, redact, shown
from funnelrec.serve.settings import ServeSettings

logger = logging.getLogger(__name__)


class Reloads:
    """The reload state of one worker and the watcher of the shared control file.

    ``swap`` installs a loaded model; ``current`` is the path of the one serving now.
    """

    def __init__(
        self,
        settings: ServeSettings,
        metrics: ServeMetrics,
        swap: Callable[[LoadedModel], None],
    ) -> None:
        self.settings = settings
        self.root = settings.root
        if settings.admin_token:  # only an admin request can name a folder to load
            check_root(self.root, settings.artifacts)
        self._metrics = metrics
        self._swap = swap
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"state": "idle"}
        self._generation: str | None = None
        self._control_mtime = 0.0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def initial_path(self) -> Path:
        """What a starting worker loads: the control file's artifact (another worker may have
        reloaded already) when it is inside the root, else the configured one.

        The control file is read before loading, so a reload published during this load
        leaves a newer mtime for the watcher to act on.
        """
        control = self._read_control()
        if control is None:
            return self.settings.artifacts
        self._generation = control.get("generation")
        named = control.get("artifacts")
        if not named:
            return self.settings.artifacts
        try:
            return confine(self.root, named)
        except RequestError:
            logger.error("control file names a folder outside the artifacts root; ignored")
            return self.settings.artifacts

    def start_watching(self) -> None:
        """Follow reloads that other workers publish in the control file."""
        self._watcher = threading.Thread(target=self._watch, name="reload-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def status(self) -> dict[str, Any]:
        """The last reload's state, paths relative to the root."""
        with self._lock:
            state = dict(self._state)
        if "path" in state:
            state["path"] = shown(self.root, state["path"])
        if "error" in state:
            state["error"] = redact(self.root, state["error"])
        return state

    def request(self, requested: str | None, current: Path) -> dict[str, Any]:
        """Start loading ``requested`` (default: ``current`` again) in the background.

        Raises:
            RequestError: outside the root (403, the same answer whether it exists or not),
                not a folder (422), or a reload already running (409).
        """
        target = confine(self.root, requested or current.resolve())
        try:
            is_dir = target.is_dir()
        except OSError:  # e.g. no permission to look: as good as absent
            is_dir = False
        if not is_dir:
            raise RequestError(422, f"{shown(self.root, target)}: not a folder", field="path")
        self._start(target, uuid.uuid4().hex, publish=True)
        return self.status()

    def _start(self, path: Path, generation: str, *, publish: bool) -> None:
        with self._lock:
            if self._state.get("state") == "loading":
                raise RequestError(409, "a reload is already in progress")
            self._generation = generation
            self._state = {
                "state": "loading",
                "path": str(path),
                "generation": generation,
                "started": time.time(),
            }
        threading.Thread(
            target=self._load, args=(path, generation, publish), name="reload", daemon=True
        ).start()

    def _load(self, path: Path, generation: str, publish: bool) -> None:
        try:
            model = load_for_serving(path, check=self.settings.self_check)
        except Exception as e:
            logger.error("reload of %s refused: %s", path, e)
            self._metrics.reloads.labels("failed").inc()
            state = {"state": "failed", "error": str(e)}
        else:
            self._swap(model)
            self._metrics.reloads.labels("ok").inc()
            state = {"state": "done", "artifact_id": model.artifact_id}
            if publish:  # only now: a refused artifact must never reach other workers
                self._write_control(path, generation)
        with self._lock:
            self._state = {**self._state, **state, "finished": time.time()}

    def _write_control(self, path: Path, generation: str) -> None:
        control = self.settings.control_file
        tmp = control.with_name(f".{control.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"artifacts": str(path), "generation": generation}))
        tmp.replace(control)
        # Our own publish is not news to our watcher: without this, a later reload request
        # (a new generation) made the watcher take this file for another worker's and load
        # it again, over the later request's "failed" state (seen as a flaky service test).
        with contextlib.suppress(OSError):
            self._control_mtime = control.stat().st_mtime

    def _read_control(self) -> dict | None:
        try:
            stat = self.settings.control_file.stat()
            data = json.loads(self.settings.control_file.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        self._control_mtime = stat.st_mtime
        return data if isinstance(data, dict) else None

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload_poll_s):
            try:
                mtime = self.settings.control_file.stat().st_mtime
            except OSError:
                continue
            if mtime == self._control_mtime:
                continue
            control = self._read_control()
            if not control or control.get("generation") in (None, self._generation):
                continue
            try:
                path = confine(self.root, control["artifacts"])
            except (RequestError, KeyError, TypeError):
                logger.error("control file names no folder inside the artifacts root; ignored")
                continue
            try:
                self._start(path, control["generation"], publish=False)
            except RequestError:
                self._control_mtime = 0.0  # busy: look again next round
