"""The ``serve`` command's security, limits and batching options, as aliases that keep its signature
readable (docs/serving.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AdminTokenOpt = Annotated[
    str | None,
    typer.Option(
        envvar="FUNNELREC_ADMIN_TOKEN",
        show_default=False,
        help="Bearer token that turns on /admin/reload and /admin/status (off without one; "
        "prefer the environment variable: options show in ps).",
    ),
]
ArtifactsRootOpt = Annotated[
    Path | None,
    typer.Option(help="Reloads load only folders inside it (default: ARTIFACTS/..)."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="FUNNELREC_API_KEY",
        show_default=False,
        help="Key /v1/recommend and /v1/events require (Authorization: Bearer or X-API-Key).",
    ),
]
RateLimitOpt = Annotated[
    float, typer.Option(min=0.0, help="Requests per second per client address (0: no limit).")
]
RateBurstOpt = Annotated[int, typer.Option(min=1, help="Requests a client may send at once.")]
MaxUserEventsOpt = Annotated[int, typer.Option(min=1, help="Store events kept per user.")]
LogMaxMbOpt = Annotated[
    float, typer.Option(min=0.0, help="Rotate the feature log past this size (0: never).")
]
LogBackupsOpt = Annotated[int, typer.Option(min=1, help="Rotated feature logs kept.")]
DocsOpt = Annotated[bool, typer.Option(help="Serve /docs (Swagger UI loads from a public CDN).")]
MaxBatchOpt = Annotated[
    int,
    typer.Option(
        min=1,
        max=256,
        help="Most requests a worker answers with one funnel run: those that waited together "
        "(1: one at a time).",
    ),
]
BatchWaitOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=10.0,
        help="How long a batch may wait for keep-alive clients that come back quickly, as a "
        "share of the last batch's compute time (0: never wait).",
    ),
]
