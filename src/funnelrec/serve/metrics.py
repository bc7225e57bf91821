"""Prometheus metrics of the service (text exposition format at ``GET /metrics``).

With several worker processes ``prometheus_client`` must run in multiprocess mode: the launcher
sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start and ``/metrics`` aggregates every
worker's files (:func:`exposition`).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class ServeMetrics:
    """The service's metric families, registered in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "funnelrec_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "funnelrec_request_seconds",
            "Server-side latency of /v1/recommend (whole request).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "funnelrec_stage_seconds",
            "Latency of each funnel stage (recall.<channel>, merge, rank, rerank, store).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "funnelrec_batch_size",
            "Requests answered by one run of the funnel (requests that queued while a worker "
            "computed are answered together; settings.max_batch caps it).",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
            registry=r,
        )
        self.degraded = Counter(
            "funnelrec_degraded",
            "Stages left out of a request (a recall channel that failed or ran over budget, a "
            "ranker that failed) and popular fallbacks.",
            ["stage", "reason"],
            registry=r,
        )
        self.over_budget = Counter(
            "funnelrec_over_budget",
            "Stages that ran past their time budget.",
            ["stage"],
            registry=r,
        )
        self.events = Counter(
            "funnelrec_events", "Feedback events accepted, by event type.", ["event"], registry=r
        )
        self.reloads = Counter(
            "funnelrec_reloads", "Artifact reloads by outcome.", ["outcome"], registry=r
        )
        self.cold_requests = Counter(
            "funnelrec_cold_requests", "Requests for users the artifact does not know.", registry=r
        )
        self.loaded = Gauge(
            "funnelrec_artifact_loaded_timestamp_seconds",
            "When the serving artifact was loaded.",
            multiprocess_mode="max",
            registry=r,
        )


def exposition(metrics: ServeMetrics, multiprocess_dir: Path | None) -> bytes:
    """The text exposition: this process's registry, or every worker's with multiprocess."""
    if multiprocess_dir is None:
        return generate_latest(metrics.registry)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(multiprocess_dir))
    return generate_latest(registry)
