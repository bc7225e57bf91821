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
from dataclasses import dataclass
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
    batch_groups,
    check_request,
    event_frames,
    fallback_items,
    response_columns,
    response_items,
    run_batch,
    run_request,
)
from funnelrec.serve.security import shown
from funnelrec.serve.settings import ServeSettings
from funnelrec.serve.store import Event, EventStore, open_store

logger = logging.getLogger(__name__)

__all__ = ["RecommendCall", "RecommendService", "RequestError"]


@dataclass(frozen=True)
class RecommendCall:
    """The arguments of one recommend request (:meth:`RecommendService.recommend`'s), for
    :meth:`RecommendService.recommend_many`."""

    user_id: str | int
    k: int
    timestamp: int | None = None
    attributes: Mapping[str, Any] | None = None
    tags: Sequence[str] | None = None
    context: Mapping[str, Any] | None = None
    request_id: str | None = None
    scenario: str | None = None
    arrived: float | None = None  # time.perf_counter() when it arrived (default: the call)


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
        call = RecommendCall(user_id, k, timestamp, attributes, tags, context, request_id, scenario)
        answer = self.recommend_many([call])[0]
        if isinstance(answer, RequestError):
            raise answer
        return answer

    def recommend_many(self, calls: Sequence[RecommendCall]) -> list[dict | RequestError]:
        """Answer several requests at once: the response dict of each, or the
        :class:`RequestError` that refused it, in order.

        Requests that :func:`~funnelrec.serve.request.batchable` allows (known users, same
        ``k`` and scenario, one per user) run through one ``Recommender.run`` of up to
        ``settings.max_batch`` queries: a worker answering the requests that queued while it
        computed pays the funnel's fixed costs once for them all (four requests together:
        3.4 ms of CPU each against 6.4 ms alone, docs/serving.md "Sixth round"). A batch that
        does not run cleanly (an exception, a recall channel dropped) is answered again one
        request at a time, with the single request's degradation rules.
        """
        start = time.perf_counter()
        model = self.model  # one artifact for the whole call, even across a reload
        answers: dict[int, dict | RequestError] = {}
        for n, call in enumerate(calls):
            try:
                check_request(
                    model.recommender, model.attribute_names, call.k, call.attributes,
                    self.settings.max_k,
                )  # fmt: skip
            except RequestError as e:
                answers[n] = e
        accepted = [n for n in range(len(calls)) if n not in answers]
        if not accepted:
            return [answers[n] for n in range(len(calls))]
        with self._slots:
            computing = time.perf_counter()  # after the wait for this worker's compute slot
            numba.set_num_threads(self._numba_threads)  # per thread: requests run in a pool
            specs: dict[int, RequestSpec] = {}
            store_s: dict[int, float] = {}
            for n in accepted:
                t_store = time.perf_counter()
                specs[n] = self._spec(model, calls[n])
                store_s[n] = time.perf_counter() - t_store
            with torch.inference_mode():
                results = self._run_all(model, specs)
        done = time.perf_counter()
        for n, (served, spec) in results.items():
            call = calls[n]
            arrived = start if call.arrived is None else call.arrived
            served.timings_s["store"] = store_s[n]
            served.timings_s["queue"] = computing - arrived  # the slot, or a batch's start
            total_s = done - arrived
            request_id = call.request_id or uuid.uuid4().hex
            items = response_columns(served.top, model.item_ids)  # the response's and the log's
            response = self._respond(model, spec, served, items, request_id, total_s)
            response["experiments"] = self.assignments(spec.user_id)
            self._record(model, spec, served, items, request_id, call.context, response)
            answers[n] = response
        return [answers[n] for n in range(len(calls))]

    def _spec(self, model: LoadedModel, call: RecommendCall) -> RequestSpec:
        """The request with its user's store events since the artifact."""
        uid = str(call.user_id)
        events = [
            e
            for e in self.store.recent(uid, self.settings.store_events_per_request)
            if e.timestamp > model.cutoff
        ]
        as_of_ts = self.now() if call.timestamp is None else int(call.timestamp)
        return RequestSpec(
            uid, call.k, as_of_ts, call.attributes, call.tags, tuple(events),
            scenario=call.scenario,
        )  # fmt: skip

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

    def _run_all(
        self, model: LoadedModel, specs: Mapping[int, RequestSpec]
    ) -> dict[int, tuple[Served, RequestSpec]]:
        """Every request's answer: the batchable ones in batches, the others one by one."""
        known = {n: spec.user_id in model.user_index for n, spec in specs.items()}
        out: dict[int, tuple[Served, RequestSpec]] = {}
        for group in batch_groups(specs, known, self.settings.max_batch):
            if len(group) > 1:
                batch = self._run_batch(model, [specs[n] for n in group])
                if batch is not None:
                    for n, served in zip(group, batch, strict=True):
                        out[n] = (served, specs[n])
                    continue
            for n in group:
                out[n] = self._run(model, specs[n])
        return out

    def _context(
        self, model: LoadedModel, users: Sequence[int], specs: Sequence[RequestSpec]
    ) -> tuple[RequestContext, ChannelOutcomes]:
        """The requests' view of the artifact: their users' rows plus the events stored
        since, the ranker's log index with those events, and the channels' time budgets."""
        rec = model.recommender
        histories = [model.history_index.for_user(u) for u in users]
        logs = []
        for user_idx, spec in zip(users, specs, strict=True):
            extra_history, extra_log = event_frames(rec, user_idx, spec.events, model.item_index)
            if extra_history.height:
                histories.append(extra_history)
            if extra_log.height:
                logs.append(extra_log)
        history = histories[0] if len(histories) == 1 else pl.concat(histories)
        rank_log = None
        if model.prepared_log is not None:
            rank_log = model.prepared_log.with_extra(pl.concat(logs) if logs else None)
        outcomes = ChannelOutcomes()
        channels = BudgetedChannels(self.settings.budgets, outcomes)
        return RequestContext(history=history, rank_log=rank_log, channels=channels), outcomes

    def _run_batch(self, model: LoadedModel, specs: Sequence[RequestSpec]) -> list[Served] | None:
        """The batch's answers, or None when it did not run cleanly."""
        users = [model.user_index[spec.user_id] for spec in specs]
        context, outcomes = self._context(model, users, specs)
        try:
            served = run_batch(model.recommender, specs, model.popularity, context)
        except Exception as e:  # answered one by one, each with its own degradation
            logger.warning("a batch of %d requests failed (%r); one at a time", len(specs), e)
            return None
        if outcomes.dropped:
            return None
        self.metrics.batch_size.observe(len(specs))
        return served

    def _run(self, model: LoadedModel, spec: RequestSpec) -> tuple[Served, RequestSpec]:
        rec = model.recommender
        user_idx = model.user_index.get(spec.user_id)
        if user_idx is None:  # not the canonical spelling of a known id: the vocabulary decides
            user_idx = int(rec.user_vocab.encode(pl.Series([spec.user_id], dtype=pl.String))[0])
        context, outcomes = self._context(model, [user_idx], [spec])
        self.metrics.batch_size.observe(1)
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
                assert context.history is not None  # _context always sets it
                seen = context.history["item_idx"].to_numpy()
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
        items = response_items(cols)
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
