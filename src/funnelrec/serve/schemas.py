"""API request/response bodies (pydantic; FastAPI derives the OpenAPI schema from them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

from funnelrec.serve.settings import MAX_K

IdText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
Id = Annotated[
    IdText | StrictInt,
    Field(description="External id, as in the training data (string or integer)."),
]
Scalar = StrictStr | StrictInt | float | bool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    """``POST /v1/recommend``."""

    user_id: Id
    k: int = Field(10, ge=1, le=MAX_K, description=f"Items to return, 1..{MAX_K}.")
    timestamp: int | None = Field(
        None, ge=0, description="As-of time, unix seconds (default: the server's clock)."
    )
    attributes: dict[str, StrictStr | StrictInt | None] | None = Field(
        None,
        max_length=16,
        description="User attributes (age, gender, region, ...) used when the user is unknown.",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=32, description="Onboarding categories (new users' chosen interests)."
    )
    context: dict[str, Scalar] | None = Field(
        None, max_length=32, description="Free-form request context, logged with the request."
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
    k: int
    timestamp: int
    artifact_id: str
    items: list[RecommendedItem]
    degraded: list[str] = Field(
        description="Stages left out of this request (recall.<channel>, rank, fallback_popular)."
    )
    timings_ms: dict[str, float]


class EventIn(_Body):
    user_id: Id
    item_id: Id
    event: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timestamp: int | None = Field(None, ge=0, description="Unix seconds (default: now).")
    value: float = Field(1.0, allow_inf_nan=False)


class EventsRequest(_Body):
    """``POST /v1/events``."""

    events: list[EventIn] = Field(min_length=1)


class EventsResponse(BaseModel):
    accepted: int
    timestamp: int


class ReloadRequest(_Body):
    path: str | None = Field(None, description="Artifact folder (default: the current one).")


class ErrorResponse(BaseModel):
    error: str
    detail: list[dict] | None = None
