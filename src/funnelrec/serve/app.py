"""The HTTP API (FastAPI): ``create_app(settings)`` with a lifespan that loads the artifact.

Endpoints: ``POST /v1/recommend``, ``POST /v1/events``, ``GET /healthz``, ``GET /readyz``,
``GET /metrics`` (Prometheus text), ``/openapi.json``; ``POST /admin/reload`` and
``GET /admin/status`` only with an admin token configured (bearer-authenticated); ``/docs``
only with ``settings.docs`` (Swagger UI loads its assets from a public CDN). Every error is
JSON: ``{"error": message, "detail": [...]}`` with a 4xx status for client mistakes (400
malformed JSON, 401 missing or wrong token, 403 reload outside the artifacts root, 413 too
large, 422 invalid values or unknown ids/attributes/events, 429 over the rate limit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from funnelrec import __version__
from funnelrec.errors import shortened
from funnelrec.serve.batching import MicroBatcher, keep_alive_client
from funnelrec.serve.errors import RequestError
from funnelrec.serve.inspector import InspectorSource, default_items_table
from funnelrec.serve.inspector_app import add_inspector_routes
from funnelrec.serve.loading import limit_threads
from funnelrec.serve.metrics import ServeMetrics, exposition
from funnelrec.serve.schemas import (
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    RecommendRequest,
    RecommendResponse,
    ReloadRequest,
)
from funnelrec.serve.security import (
    RateLimiter,
    RateLimitMiddleware,
    Receive,
    Scope,
    Send,
    send_json,
    token_matches,
)
from funnelrec.serve.service import RecommendCall, RecommendService
from funnelrec.serve.settings import ServeSettings
from funnelrec.serve.startup import start_together

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    401: {"model": ErrorResponse, "description": "Missing or wrong token."},
    413: {"model": ErrorResponse, "description": "Payload too large."},
    422: {"model": ErrorResponse, "description": "Invalid or unknown values."},
    429: {"model": ErrorResponse, "description": "Over the rate limit (see Retry-After)."},
}
ADMIN_ERRORS = {**ERRORS, 403: {"model": ErrorResponse, "description": "Outside the root."}}
# auto_error=False: a missing header is answered with the service's own 401 JSON body.
BEARER = HTTPBearer(auto_error=False)
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)


class EdgeMiddleware:
    """Body size limit (``Content-Length`` or streamed bytes) and per-route request counts."""

    def __init__(self, app: Any, max_body_bytes: int, metrics: ServeMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500, "started": False, "rejected": False}
        limit = self.max_body_bytes

        async def counting_send(message: Message) -> None:
            if status["rejected"]:
                return  # the 413 went out already; the app's own answer is dropped
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
            await send(message)

        try:
            length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
            if length is not None and int(length) > limit:
                await send_json(
                    counting_send,
                    413,
                    {"error": f"payload of {int(length)} bytes is over the {limit}-byte limit"},
                )
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit and not status["started"]:
                        # Streamed past the limit: answer 413 now, end the app's read.
                        await send_json(
                            counting_send, 413, {"error": f"payload over the {limit}-byte limit"}
                        )
                        status["rejected"] = True
                        return {"type": "http.disconnect"}
                return message

            try:
                await self.app(scope, limited_receive, counting_send)
            except Exception:
                if not status["rejected"]:
                    raise
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, str(status["code"])).inc()


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return JSONResponse({"error": f"malformed JSON body: {reason}"}, status_code=400)
    detail = [
        {
            # a dict key is part of the path, and a client may send a 60 KB one
            "field": ".".join(shortened(str(p)) for p in e.get("loc", ()) if p != "body") or "body",
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in detail[:3])
    return JSONResponse({"error": f"invalid request: {shown}", "detail": detail}, status_code=422)


def create_app(settings: ServeSettings, service: RecommendService | None = None) -> FastAPI:
    """The FastAPI app serving ``settings.artifacts`` (or an already built ``service``).

    The lifespan loads and self-checks the artifact before the first request is accepted;
    a refused artifact stops the start with its message.
    """
    metrics = service.metrics if service is not None else ServeMetrics()
    holder: dict[str, RecommendService] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limit_threads(settings.torch_threads)
        svc = service or RecommendService(settings, metrics=metrics)
        try:
            await run_in_threadpool(svc.start)
        except BaseException:
            svc.close()  # a refused artifact: release the store and the log writer
            raise
        if settings.workers > 1:
            await start_together(settings.ready_dir, settings.workers)
        holder["service"] = svc
        try:
            yield
        finally:
            svc.close()

    app = FastAPI(
        title="funnelrec",
        version=__version__,
        description="Multi-stage recommendations (recall -> merge -> rank -> re-rank) from one "
        "artifact, the same Recommender.run as offline evaluation.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,  # ReDoc, like Swagger UI, would load its scripts from a public CDN
    )
    if settings.rate_limit > 0:  # inside EdgeMiddleware: the 429s are counted in /metrics
        limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes, metrics=metrics)

    def svc() -> RecommendService:
        if "service" not in holder:
            raise RequestError(503, "the service is starting")
        return holder["service"]

    _add_error_handlers(app)
    _add_routes(app, svc, metrics, settings)
    if settings.admin_token:
        _add_admin_routes(app, svc, settings.admin_token)
        inspector = InspectorSource(
            model=lambda: svc().model,
            store=lambda: svc().store,
            now=lambda: svc().now(),
            items=default_items_table(settings.artifacts),
            events_per_request=settings.store_events_per_request,
        )
        add_inspector_routes(app, inspector, [Depends(_admin_guard(settings.admin_token))])
    return app


def create_inspector_app(source: InspectorSource, token: str) -> FastAPI:
    """An app with only the inspector (``funnelrec inspect``), behind ``token``."""
    app = FastAPI(title="funnelrec inspector", version=__version__, docs_url=None, redoc_url=None)
    _add_error_handlers(app)
    add_inspector_routes(app, source, [Depends(_admin_guard(token))])
    return app


def _unauthorized(what: str) -> RequestError:
    return RequestError(401, what, headers={"WWW-Authenticate": "Bearer"})


def _api_key_guard(key: str | None) -> Callable[..., Awaitable[None]]:
    """The dependency of the public data endpoints: ``key`` as ``Authorization: Bearer`` or
    ``X-API-Key`` (no check when no key is configured).

    A coroutine, though it awaits nothing: FastAPI runs a plain function dependency in its
    thread pool, one more thread hand-off (and wake-up) for every request."""

    async def guard(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        header: Annotated[str | None, Depends(API_KEY_HEADER)],
    ) -> None:
        if key is None:
            return
        presented = bearer.credentials if bearer is not None else None
        # Both compared in constant time, whichever was sent.
        if not (token_matches(header, key) | token_matches(presented, key)):
            raise _unauthorized("an API key is required (Authorization: Bearer or X-API-Key)")

    return guard


def _admin_guard(token: str) -> Callable[..., Awaitable[None]]:
    """The dependency of ``/admin/*``: the admin token as ``Authorization: Bearer`` (a
    coroutine, as :func:`_api_key_guard`)."""

    async def guard(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if not token_matches(bearer.credentials if bearer is not None else None, token):
            raise _unauthorized("admin endpoints need 'Authorization: Bearer <admin token>'")

    return guard


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": ...}``: validation 400/422, client mistakes 4xx, bugs 500."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        body: dict[str, Any] = {"error": str(exc)}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # The framework's own 4xx (a body it cannot parse, 404, 405) in the same shape.
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error: %r", exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def _add_routes(
    app: FastAPI,
    svc: Callable[[], RecommendService],
    metrics: ServeMetrics,
    settings: ServeSettings,
) -> None:
    """The public endpoints: recommend, events (behind the API key when one is set), health,
    readiness, Prometheus metrics."""
    needs_key = [Depends(_api_key_guard(settings.api_key))]

    # inflight=1 (the default): requests are computed on the event loop itself. Handed to
    # the thread pool, each cost a thread hop and a GIL tug-of-war with the loop's thread:
    # 7.0 -> 5.3 ms of a worker's CPU per request, measured with benchmarks/serve_load.py.
    # A worker busy computing accepts no new connection, so an idle sibling takes it.
    # Requests wait in the socket instead of on the compute slot (timings_ms.queue reads
    # ~0), and those that queued are answered together (funnelrec.serve.batching).
    batcher: MicroBatcher[RecommendCall, str] | None = None
    if settings.inflight == 1:
        batcher = MicroBatcher(
            lambda calls: _recommend_jsons(svc(), calls),
            settings.max_batch,
            wait_ratio=settings.batch_wait,
        )

    @app.post(
        "/v1/recommend", response_model=RecommendResponse, responses=ERRORS, dependencies=needs_key
    )
    async def recommend(body: RecommendRequest, request: Request) -> Response:
        """Top-k items for one user through recall -> merge -> rank -> re-rank. Unknown users
        take the cold-start path (attributes and onboarding tags help); events posted earlier
        for the user are part of their history."""
        call = RecommendCall(
            body.user_id,
            body.k,
            timestamp=body.timestamp,
            attributes=body.attributes,
            tags=body.tags,
            context=body.context,
            request_id=request.headers.get("x-request-id"),
            scenario=body.scenario,
            arrived=time.perf_counter(),
        )
        if batcher is not None:
            body_json = await batcher.submit(call, keep_alive_client(request.scope))
        else:
            answer = await run_in_threadpool(_recommend_jsons, svc(), [call])
            body_json = _raised(answer[0])
        return Response(body_json, media_type="application/json")

    @app.post("/v1/events", response_model=EventsResponse, responses=ERRORS, dependencies=needs_key)
    def events(body: EventsRequest) -> dict:
        """Record feedback (impression, click, cart, order, ...); the next request of the user
        sees it (history for recall, the ranker's behaviour features)."""
        return svc().post_events([e.model_dump() for e in body.events])

    @app.get("/healthz")
    async def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Readiness: an artifact is loaded (and self-checked) and the event store answers."""
        ok, body = svc().ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Prometheus text format: request counts, latency and per-stage histograms,
        degraded stages, events, reloads."""
        data = exposition(metrics, settings.metrics_dir)
        return Response(data, media_type=CONTENT_TYPE_LATEST)


def _recommend_jsons(
    service: RecommendService, calls: Sequence[RecommendCall]
) -> list[str | RequestError]:
    """The response body of each recommend request, or the error that refused it.

    Written here, not by FastAPI from a returned dict: its response_model path validates in
    a second thread-pool hop and encodes in Python (~0.2-0.4 ms of a worker's CPU per
    request, measured); pydantic validates and writes the same model in one call.
    response_model still declares the schema.
    """
    return [
        answer
        if isinstance(answer, RequestError)
        else RecommendResponse.model_validate(answer).model_dump_json()
        for answer in service.recommend_many(calls)
    ]


def _raised(answer: str | RequestError) -> str:
    if isinstance(answer, RequestError):
        raise answer
    return answer


def _add_admin_routes(app: FastAPI, svc: Callable[[], RecommendService], token: str) -> None:
    """Hot reload and status, behind the admin token (registered only when one is set)."""
    needs_admin = [Depends(_admin_guard(token))]

    @app.post("/admin/reload", status_code=202, responses=ADMIN_ERRORS, dependencies=needs_admin)
    def reload(body: ReloadRequest | None = None) -> dict:
        """Load an artifact folder inside the artifacts root (relative paths: relative to it)
        in the background, self-check it and swap it in; requests in flight finish on the old
        one, a refused artifact leaves the old one serving."""
        return svc().reload(body.path if body is not None else None)

    @app.get("/admin/status", responses=ADMIN_ERRORS, dependencies=needs_admin)
    def status() -> dict:
        """The serving artifact and the last reload's state (paths relative to the root)."""
        return svc().status()
