"""The inspector's HTTP routes: the page (``GET /inspect``, its script and style sheet, shipped
in the package: no CDN, no build step) and its JSON endpoints under ``/inspect/api/``.

The routes are added only where the caller passes the admin guard (``funnelrec serve
--admin-token``; ``funnelrec inspect`` with its own token): a trace shows a user's history, so
it is admin data. The page itself is static and holds no data; it asks for the token and
sends it as ``Authorization: Bearer`` with every call.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, Response

from funnelrec.serve.errors import RequestError
from funnelrec.serve.inspector import (
    USER_SEARCH_LIMIT,
    InspectorSource,
    InspectRequest,
    artifact_meta,
    inspect_request,
    search_users,
)

STATIC_DIR = "inspector_static"  # package data of funnelrec.serve (pyproject.toml)
ASSETS = {"inspector.js": "text/javascript", "inspector.css": "text/css"}
"""The only files ``/inspect/static/`` serves (a fixed list: no path from the URL reaches the
file system)."""
# The page loads only its own files and calls only its own origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _asset(name: str) -> bytes:
    return resources.files("funnelrec.serve").joinpath(STATIC_DIR, name).read_bytes()


def add_inspector_routes(
    app: FastAPI, source: InspectorSource, dependencies: Sequence[Depends]
) -> None:
    """``/inspect`` (the page) and ``/inspect/api/*`` (behind ``dependencies``)."""
    guarded = list(dependencies)
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-store"}

    @app.get("/inspect", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        """The inspector page (static; it asks for the admin token)."""
        return HTMLResponse(_asset("index.html"), headers=headers)

    @app.get("/inspect/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in ASSETS:
            raise RequestError(404, f"no inspector asset {name[:40]!r}")
        return Response(_asset(name), media_type=ASSETS[name], headers=headers)

    @app.get("/inspect/api/meta", dependencies=guarded)
    def meta() -> dict[str, Any]:
        """The artifact: stages, attribute names, onboarding categories, the largest k."""
        return artifact_meta(source)

    @app.get("/inspect/api/users", dependencies=guarded)
    def users(
        q: Annotated[str, Query(max_length=256)] = "",
        limit: Annotated[int, Query(ge=1, le=USER_SEARCH_LIMIT)] = 20,
    ) -> dict[str, list[str]]:
        """Known user ids containing ``q`` (those starting with it first)."""
        return {"users": search_users(source.model(), q, limit)}

    @app.post("/inspect/api/trace", dependencies=guarded)
    def trace(body: InspectRequest) -> dict[str, Any]:
        """One request through every stage, and where ``why_not`` (an item id) was lost."""
        return inspect_request(source, body)
