"""API request/response bodies (pydantic; FastAPI derives the OpenAPI schema from them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from funnelrec.features.sequence import TIME_MASK
from funnelrec.serve.settings import MAX_K

MAX_TIMESTAMP = TIME_MASK
"""Latest accepted request/event time, 2106-02-07: the ranker's point-in-time features hold
times relative to the log's first event in 32 bits, so a later time (a typo, 10**18) could
only be served degraded."""

# Every string is constrained: besides its length, pydantic then refuses lone surrogates
# ("\ud800" parses from JSON, but no store, log or vocabulary can encode it).
Text = Annotated[str, StringConstraints(strict=True, max_length=1024)]
IdText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
Id = Annotated[
    IdText | StrictInt,
    Field(description="External id, as in the training data (string or integer)."),
]
Name = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64)]
Timestamp = Annotated[
    int, Field(ge=0, le=MAX_TIMESTAMP, description="Unix seconds, 0 .. 2**32 - 1 (1970..2106).")
]
Int32 = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# Bounded so that the feature log stays readable by any JSON reader (int64, no NaN/Infinity).
Scalar = Text | Int64 | FiniteFloat | StrictBool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """``POST /v1/recommend``."""

    user_id: Id
    k: int = Field(
        10,
        ge=1,
        le=MAX_K,
        description=f"Items to return, 1..{MAX_K}; a k above what the artifact can return (its "
        "re-ranker's pool, usually 100) is refused with 422, never silently cut.",
    )
    timestamp: Timestamp | None = Field(
        None, description="As-of time, unix seconds (default: the server's clock)."
    )
    attributes: dict[Name, Text | Int32 | None] | None = Field(
        None,
        max_length=16,
        description="User attributes (age, gender, region, ...) used when the user is unknown: "
        "text or 32-bit integers.",
    )
    tags: list[Name] | None = Field(
        None, max_length=32, description="Onboarding categories (new users' chosen interests)."
    )
    context: dict[Name, Scalar] | None = Field(
        None,
        max_length=32,
        description="Free-form request context, logged with the request (finite numbers).",
    )
    scenario: Name | None = Field(
        None,
        description="Where the request comes from (home feed, detail page, search, ...): a "
        "scenario-aware ranker (STAR, rank.scenario_feature) reads it; unknown or absent "
        "scenarios score as the shared model.",
    )


class RecommendedItem(BaseModel):
    item_id: str | int
    rank: int = Field(description="Final position (1-based).")
    score: float | None = Field(
        description="Final score: the ranker's fused score, or the recall score without a "
        "ranker; null for items the ranker does not judge (they keep their recall position)."
    )
    source: str = Field(description="Recall channel that contributed the item.")
    merged_rank: int | None = Field(description="Position after the multi-channel merge.")
    source_rank: int | None = Field(description="Position within its channel.")
    recall_score: float | None
    pre_rerank_rank: int | None = Field(description="Position before the re-rank stage.")
    probabilities: dict[str, float | None] = Field(description="The ranker's p_<task>.")


class RecommendResponse(BaseModel):
    request_id: str
    user_id: str
    known_user: bool
    history_len: int
    k: int = Field(
        description="Items asked for; ``items`` holds fewer when the funnel finds fewer "
        "(a small catalogue, a user who has seen most of it)."
    )
    timestamp: int
    artifact_id: str
    items: list[RecommendedItem]
    degraded: list[str] = Field(
        description="Stages left out of this request (recall.<channel>, rank, fallback_popular)."
    )
    timings_ms: dict[str, float]
    experiments: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="The user's arm per experiment layer, {layer: {experiment, arm}}, when "
        "the service runs with --experiments (also in the feature log).",
    )


class EventIn(_Body):
    user_id: Id
    item_id: Id
    event: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timestamp: Timestamp | None = Field(None, description="Unix seconds (default: now).")
    value: FiniteFloat = 1.0


class EventsRequest(_Body):
    """``POST /v1/events``."""

    events: list[EventIn] = Field(min_length=1)


class EventsResponse(BaseModel):
    accepted: int
    timestamp: int


class ReloadRequest(_Body):
    path: str | None = Field(None, description="Artifact folder (default: the current one).")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: ``error`` (one line), ``detail`` (per-field validation errors) or
    ``field`` (the request field a service-side check refused)."""

    error: str
    detail: list[dict] | None = None
    field: str | None = None
