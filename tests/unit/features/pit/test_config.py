"""Feature settings: validation, dense feature names, configs saved with the removed key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from funnelrec.features.pit import PointInTimeConfig
from funnelrec.features.pit.config import dense_feature_names


def test_windows_must_be_distinct_and_positive() -> None:
    with pytest.raises(ValidationError):
        PointInTimeConfig(windows_s=(0,))
    with pytest.raises(ValidationError):
        PointInTimeConfig(windows_s=(3600, 3600))


def test_dense_feature_names_follow_windows_and_data() -> None:
    cfg = PointInTimeConfig(windows_s=(90, 7200))
    bare = dense_feature_names(cfg, impressions=False, created_at=False)
    assert bare == (
        "u_pos_90s", "u_pos_2h", "u_pos_all", "u_recency",
        "i_pos_90s", "i_pos_2h", "i_pos_all", "i_recency", "i_first_age", "i_trend",
        "uc_pos_90s", "uc_pos_2h", "uc_pos_all", "uc_recency", "uc_share", "ui_pos_all",
    )  # fmt: skip
    full = dense_feature_names(cfg, impressions=True, created_at=True)
    assert set(full) - set(bare) == {
        "u_imp_all", "u_ctr", "i_imp_all", "i_ctr", "i_age", "ui_imp_all"
    }  # fmt: skip


def test_saved_configs_with_a_null_positive_events_still_load() -> None:
    """Artifacts written before the rule moved to ``data.positive_events`` hold the key as
    null; a real value is refused rather than silently ignored."""
    saved = PointInTimeConfig().model_dump(mode="json") | {"positive_events": None}
    assert PointInTimeConfig.model_validate(saved) == PointInTimeConfig()
    with pytest.raises(ValidationError, match="data.positive_events"):
        PointInTimeConfig.model_validate(saved | {"positive_events": ["order"]})
