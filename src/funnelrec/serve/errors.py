"""The service's client errors: an HTTP status, a message, and the headers that go with it."""

from __future__ import annotations

from collections.abc import Mapping

from funnelrec.errors import FunnelrecError


class RequestError(FunnelrecError):
    """A client mistake: ``status`` is the HTTP status the API answers with; ``headers`` are
    added to the JSON error response (``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.headers = dict(headers or {})
