"""The recommendation service without any web framework: load + self-check, per-request views
over the event store, degradation, feature logging, metrics and hot reload.

``funnelrec.serve.app`` maps HTTP onto :class:`RecommendService`; tests and the benchmark can
drive it directly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import polars as pl
import torch

from funnelrec.abtest.assignment import ExperimentPlan
from funnelrec.errors import FunnelrecError
from funnelrec.pipeline.context import RequestContext
from funnelrec.serve.errors import RequestError
from funnelrec.serve.featurelog import FEATURE_LOG_VERSION, FeatureLogger
from funnelrec.serve.loading import LoadedModel, load_for_serving, numba_max_threads
from funnelrec.serve.metrics import ServeMetrics
from funnelrec.serve.reload import Reloads
from funnelrec.serve.request import (
    FALLBACK_SOURCE,
    BudgetedChannels,
    ChannelOutcomes,
    RequestSpec,
    Served,
    check_request,
    event_frames,
    fallback_items,
    response_columns,
    run_request,
)
from funnelrec.serve.security import shown
from funnelrec.serve.settings import ServeSettings
from funnelrec.serve.store import Event, EventStore, open_store

logger = logging.getLogger(__name__)

__all__ = ["RecommendService", "RequestError"]


class RecommendService:
    """Serve recommendations from one loaded artifact at a time (see module docstring)."""

    def __init__(
        self,
        settings: ServeSettings,
        *,
        model: LoadedModel | None = None,
        store: EventStore | None = None,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ServeMetrics()
        self._stage_children: dict[str, Any] = {}
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.store: EventStore = store or open_store(
            settings.store_url, max_per_user=settings.max_events_per_user
        )
        self.feature_log = FeatureLogger(
            settings.feature_log_path,
            max_bytes=settings.feature_log_max_bytes,
            backups=settings.feature_log_backups,
        )
        self._model: LoadedModel | None = model
        self._slots = threading.BoundedSemaphore(settings.inflight)
        self.reloads = Reloads(settings, self.metrics, self._install)
        self._closed = False
        self._numba_threads = min(settings.torch_threads, numba_max_threads())
        # Read at construction: a malformed file stops the start with one ConfigError line.
        self.plan = (
            None if settings.experiments is None else ExperimentPlan.from_toml(settings.experiments)
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load the configured artifact (unless given) and start watching for reloads."""
        path = self.reloads.initial_path()
        if self._model is None:
            self._model = load_for_serving(path, check=self.settings.self_check)
        self.metrics.loaded.set(self._model.loaded_at)
        self.reloads.start_watching()

    def _install(self, model: LoadedModel) -> None:
        self._model = model  # atomic swap; in-flight requests finish on the old one
        self.metrics.loaded.set(model.loaded_at)

    def close(self) -> None:
        """Stop the reload watcher, flush the feature log, close the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.reloads.close()
        self.feature_log.close()
        self.store.close()

    @property
    def model(self) -> LoadedModel:
        if self._model is None:
            raise RequestError(503, "no artifact loaded yet")
        return self._model

    def now(self) -> int:
        return int(time.time()) + self.settings.clock_offset_s

    # ------------------------------------------------------------------ recommend
    def recommend(
        self,
        user_id: str | int,
        k: int,
        *,
        timestamp: int | None = None,
        attributes: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        context: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        scenario: str | None = None,
    ) -> dict:
        """Top-``k`` for one user; the response dict of ``RecommendResponse``.

        Raises:
            RequestError: ``k`` out of range or unknown attribute names (422).
        """
        start = time.perf_counter()
        model = self.model  # one artifact for the whole request, even across a reload
        check_request(model.recommender, model.attribute_names, k, attributes, self.settings.max_k)
        request_id = request_id or uuid.uuid4().hex
        as_of_ts = self.now() if timestamp is None else int(timestamp)
        uid = str(user_id)
        with self._slots:
            queue_s = time.perf_counter() - start  # waiting for this worker's compute slot
            numba.set_num_threads(self._numba_threads)  # per thread: requests run in a pool
            t_store = time.perf_counter()
            events = [
                e
                for e in self.store.recent(uid, self.settings.store_events_per_request)
                if e.timestamp > model.cutoff
            ]
            store_s = time.perf_counter() - t_store
            spec = RequestSpec(uid, k, as_of_ts, attributes, tags, tuple(events), scenario=scenario)
            with torch.inference_mode():
                served, spec = self._run(model, spec)
        served.timings_s["store"] = store_s
        served.timings_s["queue"] = queue_s
        total_s = time.perf_counter() - start
        items = response_columns(served.top, model.item_ids)  # the response's and the log's
        response = self._respond(model, spec, served, items, request_id, total_s)
        response["experiments"] = self.assignments(uid)
        self._record(model, spec, served, items, request_id, context, response)
        return response

    def assignments(self, user_id: str) -> dict[str, dict[str, str]]:
        """``{layer: {experiment, arm}}`` of the user in the experiments file ({} without
        one): returned and logged with every request, so each arm's metrics can be computed
        from the feature log."""
        if self.plan is None:
            return {}
        return {
            layer: {"experiment": a.experiment, "arm": a.arm}
            for layer, a in self.plan.assign(user_id).items()
        }

    def _run(self, model: LoadedModel, spec: RequestSpec) -> tuple[Served, RequestSpec]:
        rec = model.recommender
        user_idx = model.user_index.get(spec.user_id)
        if user_idx is None:  # not the canonical spelling of a known id: the vocabulary decides
            user_idx = int(rec.user_vocab.encode(pl.Series([spec.user_id], dtype=pl.String))[0])
        extra_history, extra_log = event_frames(rec, user_idx, spec.events, model.item_index)
        base = model.history_index.for_user(user_idx)
        history = pl.concat([base, extra_history]) if extra_history.height else base
        outcomes = ChannelOutcomes()
        rank_log = None if model.prepared_log is None else model.prepared_log.with_extra(extra_log)
        context = RequestContext(
            history=history,
            rank_log=rank_log,
            channels=BudgetedChannels(self.settings.budgets, outcomes),
        )
        try:
            served, _ = run_request(rec, spec, model.popularity, context)
            failed = False
        except FunnelrecError as e:
            raise RequestError(422, str(e)) from None
        except Exception:  # degrade: the merge order, then popular items
            logger.exception("request failed with the ranker; serving the merge order")
            self.metrics.degraded.labels("rank", "error").inc()
            failed = True
            try:
                served, _ = run_request(
                    rec, spec, model.popularity, dataclasses.replace(context, use_ranker=False)
                )
            except Exception:
                logger.exception("request failed without the ranker; serving popular items")
                seen = history["item_idx"].to_numpy()
                top = fallback_items(model.popularity, seen, spec.k)
                served = Served(top, top, {}, user_idx >= 0, int(seen.shape[0]), True)
        spec = dataclasses.replace(spec, dropped=tuple(outcomes.dropped), ranker_failed=failed)
        for name, reason in outcomes.dropped.items():
            self.metrics.degraded.labels(f"recall.{name}", reason).inc()
        if served.fallback:
            self.metrics.degraded.labels("recall", "fallback_popular").inc()
        return served, spec

    def _respond(
        self,
        model: LoadedModel,
        spec: RequestSpec,
        served: Served,
        cols: dict[str, list],
        request_id: str,
        total_s: float,
    ) -> dict:
        items = _response_items(cols)
        timings = {name: round(s * 1e3, 3) for name, s in served.timings_s.items()}
        timings["total"] = round(total_s * 1e3, 3)
        self._observe(served, total_s)
        degraded = [f"recall.{n}" for n in spec.dropped]
        if spec.ranker_failed:
            degraded.append("rank")
        if served.fallback:
            degraded.append(FALLBACK_SOURCE)
        return {
            "request_id": request_id,
            "user_id": spec.user_id,
            "known_user": served.known_user,
            "history_len": served.history_len,
            "k": spec.k,
            "timestamp": spec.timestamp,
            "artifact_id": model.artifact_id,
            "items": items,
            "degraded": degraded,
            "timings_ms": timings,
        }

    def _observe(self, served: Served, total_s: float) -> None:
        m, budgets = self.metrics, self.settings.budgets
        m.request_seconds.observe(total_s)
        limits = {
            "merge": budgets.merge_ms,
            "rank": budgets.rank_ms,
            "rerank": budgets.rerank_ms,
        }
        for stage, seconds in served.timings_s.items():
            self._stage_seconds(stage).observe(seconds)
            if stage in limits and seconds * 1e3 > limits[stage]:
                m.over_budget.labels(stage).inc()
        if total_s * 1e3 > budgets.request_ms:
            m.over_budget.labels("request").inc()
        if not served.known_user:
            m.cold_requests.inc()

    def _stage_seconds(self, stage: str) -> Any:
        """The stage's histogram child, looked up once: ``labels()`` validates and locks on
        every call (~13 stages a request)."""
        child = self._stage_children.get(stage)
        if child is None:
            child = self._stage_children[stage] = self.metrics.stage_seconds.labels(stage)
        return child

    def _record(
        self,
        model: LoadedModel,
        spec: RequestSpec,
        served: Served,
        items: dict[str, list],
        request_id: str,
        context: Mapping[str, Any] | None,
        response: Mapping[str, Any],
    ) -> None:
        """Log the request with what was answered (its timings and experiment arms)."""
        depth = self.settings.log_depth
        record = {
            "version": FEATURE_LOG_VERSION,
            "request_id": request_id,
            "time": time.time(),
            "artifact_id": model.artifact_id,
            "user_id": spec.user_id,
            "experiments": response["experiments"],
            "k": spec.k,
            "timestamp": spec.timestamp,
            "attributes": dict(spec.attributes) if spec.attributes else None,
            "tags": list(spec.tags) if spec.tags else None,
            "scenario": spec.scenario,
            "context": dict(context) if context else None,
            "events": [[e.item_id, e.event, e.timestamp, e.value] for e in spec.events],
            "dropped": list(spec.dropped),
            "ranker_failed": spec.ranker_failed,
            "fallback": served.fallback,
            "known_user": served.known_user,
            "timings_ms": response["timings_ms"],
            "items": items,
            "pool": response_columns(served.pool.head(depth), model.item_ids) if depth else None,
        }
        try:
            self.feature_log.write(record)
        except (TypeError, ValueError) as e:  # never fail a served request on logging
            logger.error("feature log: record of %s not written: %s", request_id, e)

    # ------------------------------------------------------------------ events
    def post_events(self, events: Sequence[Mapping[str, Any]]) -> dict:
        """Validate and store feedback events (``user_id, item_id, event[, timestamp, value]``).

        Raises:
            RequestError: too many events, unknown item ids or event types (422); nothing is
                stored then.
        """
        model = self.model
        if not events:
            raise RequestError(422, "no events", field="events")
        if len(events) > self.settings.max_events_per_post:
            raise RequestError(
                413,
                f"{len(events)} events in one post (at most {self.settings.max_events_per_post})",
                field="events",
            )
        now = self.now()
        parsed: list[Event] = []
        unknown_items: list[str] = []
        unknown_events: list[str] = []
        for e in events:
            item = str(e["item_id"])
            if item not in model.item_index:
                unknown_items.append(item)
            if e["event"] not in model.event_names:
                unknown_events.append(str(e["event"]))
            ts = e.get("timestamp")
            parsed.append(
                Event(
                    str(e["user_id"]),
                    item,
                    str(e["event"]),
                    now if ts is None else int(ts),
                    float(e.get("value", 1.0)),
                )
            )
        if unknown_items:
            raise RequestError(
                422,
                f"unknown item_id(s) {sorted(set(unknown_items))[:10]}: not in the catalogue of "
                f"artifact {model.artifact_id}; no event was stored",
                field="item_id",
            )
        if unknown_events:
            raise RequestError(
                422,
                f"unknown event type(s) {sorted(set(unknown_events))[:10]} (known: "
                f"{', '.join(sorted(model.event_names))}); no event was stored",
                field="event",
            )
        start = time.perf_counter()
        self.store.append(parsed)
        self.metrics.stage_seconds.labels("store.append").observe(time.perf_counter() - start)
        for event in parsed:
            self.metrics.events.labels(event.event).inc()
        return {"accepted": len(parsed), "timestamp": now}

    # ------------------------------------------------------------------ health
    def health(self) -> dict:
        return {"status": "ok", "pid": os.getpid()}

    def ready(self) -> tuple[bool, dict]:
        """Readiness and the artifact serving now (``/readyz``, public: no paths, no errors
        from inside)."""
        model = self._model
        store_ok = True
        try:
            self.store.ping()
        except Exception as e:
            logger.error("event store unavailable: %r", e)
            store_ok = False
        body = {
            "ready": model is not None and store_ok,
            "artifact_id": None if model is None else model.artifact_id,
            "store": "ok" if store_ok else "unavailable",
        }
        return bool(body["ready"]), body

    def status(self) -> dict:
        """``/admin/status``: readiness, the serving folder and the last reload, paths
        relative to the artifacts root."""
        model = self._model
        _, body = self.ready()
        return {
            **body,
            "artifacts": None if model is None else shown(self.reloads.root, model.path),
            "reload": self.reloads.status(),
        }

    # ------------------------------------------------------------------ reload
    def reload(self, path: str | None = None) -> dict:
        """Load ``path`` (inside the artifacts root; default: the current artifact folder
        again) in the background and swap it in when it passed the self-check; requests keep
        the old one until then. Other worker processes follow through the control file.

        Raises:
            RequestError: outside the artifacts root (403), not a folder (422), or a reload
                already running (409).
        """
        return self.reloads.request(path, self.model.path)


def _response_items(cols: Mapping[str, list]) -> list[dict[str, Any]]:
    """One dict per returned item (the response's ``items``) from the response columns;
    a stage column the request did not produce reads None."""
    n = len(cols["item_id"])
    absent = [None] * n
    tasks = [c for c in cols if c.startswith("p_")]
    names = [t.removeprefix("p_") for t in tasks]
    per_item = zip(*(cols[t] for t in tasks), strict=True)
    probabilities = [dict(zip(names, p, strict=True)) for p in per_item]
    rows = zip(
        cols["item_id"],
        cols["rank"],
        cols["score"],
        cols["source"],
        cols["merged_rank"],
        cols.get("source_rank", absent),
        cols.get("recall_score", absent),
        cols.get("pre_rerank_rank", absent),
        probabilities if tasks else [{} for _ in range(n)],
        strict=True,
    )
    return [
        {
            "item_id": item_id,
            "rank": rank,
            "score": score,
            "source": source,
            "merged_rank": merged_rank,
            "source_rank": source_rank,
            "recall_score": recall_score,
            "pre_rerank_rank": pre_rerank_rank,
            "probabilities": probs,
        }
        for (
            item_id,
            rank,
            score,
            source,
            merged_rank,
            source_rank,
            recall_score,
            pre_rerank_rank,
            probs,
        ) in rows
    ]
