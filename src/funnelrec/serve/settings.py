"""Service settings (one frozen config; ``funnelrec serve`` fills it from its options)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 500


class Budgets(BaseModel):
    """Per-stage time budgets, milliseconds.

    A recall channel that raises or runs past its budget is dropped for that request (logged,
    counted in ``/metrics``); the other stages are measured against theirs and counted when
    over, never dropped (their output is the answer).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    recall_ms: float = Field(250.0, gt=0, description="Default budget of each recall channel.")
    channels_ms: dict[str, float] = Field(
        default_factory=dict, description="Per-channel overrides, e.g. {'two_tower': 30}."
    )
    merge_ms: float = Field(50.0, gt=0)
    rank_ms: float = Field(250.0, gt=0)
    rerank_ms: float = Field(100.0, gt=0)
    request_ms: float = Field(1000.0, gt=0, description="Whole request (counted when over).")

    def channel_s(self, name: str) -> float:
        return self.channels_ms.get(name, self.recall_ms) / 1000.0


class ServeSettings(BaseModel):
    """Everything the service needs; serialisable so worker processes get the same.

    Example:
        >>> s = ServeSettings(artifacts=Path("run/artifacts"), state_dir=Path("run/serve"))
        >>> s.store_url, s.feature_log_path.name
        ('sqlite:///run/serve/events.sqlite', 'features.jsonl')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    artifacts: Path = Field(description="Artifact folder written by run/demo.")
    state_dir: Path = Field(description="Event store, feature log and reload control file.")
    store: str | None = Field(
        None, description="sqlite:///PATH or redis://HOST:PORT/DB (None: SQLite in state_dir)."
    )
    feature_log: Path | None = Field(None, description="JSON lines (None: state_dir).")
    log_depth: int = Field(
        50, ge=0, description="Candidates of the ranked pool logged per request (best first)."
    )
    self_check: bool = Field(True, description="Re-score the golden set before serving.")
    experiments: Path | None = Field(
        None,
        description="Experiments file (TOML, funnelrec.abtest.assignment.ExperimentPlan): "
        "each request's user is assigned in every layer, and the assignment is returned and "
        "logged with the request (docs/experiments.md).",
    )
    max_k: int = Field(MAX_K, ge=1, le=10_000)
    max_body_bytes: int = Field(64 * 1024, gt=0)
    max_events_per_post: int = Field(500, gt=0)
    store_events_per_request: int = Field(
        500, gt=0, description="Newest store events of the user read per request."
    )
    budgets: Budgets = Budgets()
    clock_offset_s: int = Field(
        0,
        description="Added to the wall clock for request and event times (the launcher sets "
        "it so that 'now' starts at the artifact's last event, for replayed/simulated data).",
    )
    torch_threads: int = Field(
        1, ge=1, description="Threads of torch, numba, faiss and BLAS per worker."
    )
    inflight: int = Field(
        1, ge=1, description="Requests computed at once per worker (more only adds GIL churn)."
    )
    max_batch: int = Field(
        8,
        ge=1,
        le=256,
        description="Most requests a worker answers with one run of the funnel: those that "
        "queued while it computed (1: one at a time). A batch's requests all wait for its "
        "end, so this also caps the latency batching adds.",
    )
    batch_wait: float = Field(
        0.5,
        ge=0,
        le=10,
        description="How long a batch may wait for keep-alive clients it just answered that "
        "came back as quickly the last time, as a share of the last batch's compute time "
        "(0: never wait; funnelrec.serve.batching).",
    )
    admin_token: str | None = Field(
        None,
        min_length=16,
        repr=False,
        description="Bearer token of /admin/* (None: no admin endpoints at all, 404).",
    )
    artifacts_root: Path | None = Field(
        None, description="Reloads load only folders inside it (None: the parent of artifacts)."
    )
    api_key: str | None = Field(
        None,
        min_length=16,
        repr=False,
        description="Key required by /v1/recommend and /v1/events (Authorization: Bearer or "
        "X-API-Key; None: open).",
    )
    rate_limit: float = Field(
        0.0, ge=0, description="Requests per second per client address (0: no limit)."
    )
    rate_burst: int = Field(20, ge=1, description="Requests a client may send at once.")
    max_events_per_user: int = Field(
        1000, ge=1, description="Events the store keeps per user (older ones are trimmed)."
    )
    feature_log_max_bytes: int = Field(
        100 * 2**20, ge=0, description="Rotate the feature log past this size (0: never)."
    )
    feature_log_backups: int = Field(1, ge=1, description="Rotated feature logs kept (.1, .2..).")
    docs: bool = Field(
        False, description="Serve /docs (Swagger UI, whose assets load from a public CDN)."
    )
    reload_poll_s: float = Field(1.0, gt=0, description="How often workers check for a reload.")
    metrics_dir: Path | None = Field(
        None, description="prometheus_client multiprocess folder (set with several workers)."
    )
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes of the server (set by the launcher): with several, "
        "each starts answering only once all have loaded (funnelrec.serve.startup).",
    )

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.state_dir / 'events.sqlite'}"

    @property
    def feature_log_path(self) -> Path:
        return self.feature_log or self.state_dir / "features.jsonl"

    @property
    def control_file(self) -> Path:
        return self.state_dir / "active_artifacts.json"

    @property
    def ready_dir(self) -> Path:
        """Where the workers of one start leave their loaded markers."""
        return self.state_dir / "workers-ready"

    @property
    def root(self) -> Path:
        """The resolved artifacts root that reloads are confined to."""
        return (self.artifacts_root or self.artifacts.resolve().parent).resolve()
