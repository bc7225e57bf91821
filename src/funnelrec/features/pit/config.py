"""Point-in-time feature settings, the table columns they read and the dense feature names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_S = 86400
IMPRESSION = "impression"
SAMPLE_COLUMNS = ("query_id", "user_idx", "item_idx", "timestamp")
LOG_COLUMNS = ("user_idx", "item_idx", "timestamp", "event")
EXTRA_COLUMNS = ("position", "source_rank", "recall_score")
"""Numeric sample columns carried into ``RankFeatures.extra`` when present (not features)."""


class PointInTimeConfig(BaseModel):
    """Point-in-time feature settings.

    Which events count as positives is not set here: it is the experiment's
    ``data.positive_events``, read from the Dataset at fit time (:mod:`funnelrec.data.events`).

    Example:
        >>> PointInTimeConfig(windows_s=(3600, 86400)).seq_len
        50
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["point_in_time"] = "point_in_time"
    windows_s: tuple[int, ...] = Field(
        (DAY_S, 7 * DAY_S, 30 * DAY_S), description="Count windows [t - w, t), seconds."
    )
    seq_len: int = Field(50, ge=1, description="L, behaviours in the sequence features.")
    seq_events: tuple[str, ...] | None = Field(
        None, description="Events in the behaviour sequence; None = the positive events."
    )
    ctr_event: str = Field("click", description="The event whose rate over impressions is CTR.")
    ctr_prior: float = Field(
        20.0, ge=0, description="Pseudo-impressions at the global CTR smoothing each CTR."
    )
    recency_cap_s: int = Field(
        365 * DAY_S, gt=0, description="Recency is capped here; also the value with no event."
    )
    clip: float = Field(10.0, gt=0, description="Standardised dense values are clipped to +-clip.")
    recall_evidence: bool = Field(
        True,
        description="Read the recall stage's evidence about each candidate (every channel's "
        "rank and score, item-item and embedding similarity to the user's recent items, how "
        "many channels returned it, its merged position) as dense features. Without it the "
        "ranker sees none of what recall knew.",
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_positive_events(cls, data: Any) -> Any:
        # Configs saved before the positive rule moved to data.positive_events (artifacts'
        # config.json) carry "positive_events": null; accept that, refuse a real value, which
        # would otherwise be silently ignored.
        if isinstance(data, dict) and "positive_events" in data:
            if data["positive_events"] is not None:
                raise ValueError(
                    "features.positive_events was removed: set data.positive_events instead"
                )
            data = {k: v for k, v in data.items() if k != "positive_events"}
        return data

    @field_validator("windows_s")
    @classmethod
    def _positive_windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if any(w <= 0 for w in windows) or len(set(windows)) != len(windows):
            raise ValueError(f"windows_s must be distinct and positive, got {windows}")
        return windows


USER_SIDE_PREFIX = "u_"
"""The prefix of the dense features computed from the user's own events alone."""


def _window_name(w: int) -> str:
    if w % DAY_S == 0:
        return f"{w // DAY_S}d"
    if w % 3600 == 0:
        return f"{w // 3600}h"
    return f"{w}s"


def dense_feature_names(
    config: PointInTimeConfig, *, impressions: bool, created_at: bool
) -> tuple[str, ...]:
    """Names of the dense features, in column order.

    Args:
        config: the feature settings (count windows).
        impressions: whether the log has impressions (impression counts and CTR features).
        created_at: whether items have a creation time (the item age feature).

    Returns:
        ``D`` names: user side, item side, item age, user x category, user x item.

    Example:
        >>> cfg = PointInTimeConfig(windows_s=(86400,))
        >>> dense_feature_names(cfg, impressions=False, created_at=False)[:3]
        ('u_pos_1d', 'u_pos_all', 'u_recency')
    """
    win = [_window_name(w) for w in config.windows_s]
    names: list[str] = []
    for side in ("u", "i"):
        names += [f"{side}_pos_{w}" for w in win] + [f"{side}_pos_all", f"{side}_recency"]
        if side == "i":
            names += ["i_first_age", "i_trend"]
        if impressions:
            names += [f"{side}_imp_all", f"{side}_ctr"]
    if created_at:
        names.append("i_age")
    names += [f"uc_pos_{w}" for w in win] + ["uc_pos_all", "uc_recency", "uc_share"]
    names += ["ui_pos_all"]
    if impressions:
        names.append("ui_imp_all")
    return tuple(names)
