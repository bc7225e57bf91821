"""Fitted state as plain arrays: exact round trips, the positive rule kept, old states read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.spec import RankFeatures

DAY = 86400
Identical = Callable[[RankFeatures, RankFeatures], None]


def _reload(features: PointInTimeFeatures, tmp_path: Path) -> dict[str, np.ndarray]:
    np.savez(tmp_path / "pit.npz", **features.state())
    with np.load(tmp_path / "pit.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def test_state_round_trip_is_identical(
    sim: tuple[Dataset, pl.DataFrame],
    fitted: PointInTimeFeatures,
    assert_identical: Identical,
    tmp_path: Path,
) -> None:
    data, samples = sim
    state = _reload(fitted, tmp_path)
    reloaded = PointInTimeFeatures.from_state(fitted.config, state)
    assert_identical(
        fitted.transform(samples, data.interactions), reloaded.transform(samples, data.interactions)
    )
    with pytest.raises(ValueError, match="dense features"):
        PointInTimeFeatures.from_state(PointInTimeConfig(windows_s=(DAY,)), state)


def test_state_keeps_the_positive_rule(
    hand_orders_only: tuple[Dataset, pl.DataFrame], assert_identical: Identical, tmp_path: Path
) -> None:
    data, samples = hand_orders_only
    cfg = PointInTimeConfig(seq_len=4)
    pit = PointInTimeFeatures(cfg).fit(data, samples)
    assert pit.positive_events == ("order",)
    reloaded = PointInTimeFeatures.from_state(cfg, _reload(pit, tmp_path))
    assert reloaded.positive_events == ("order",)
    assert_identical(
        pit.transform(samples, data.interactions), reloaded.transform(samples, data.interactions)
    )


def test_state_with_an_empty_rule_round_trips(
    hand: tuple[Dataset, pl.DataFrame], tmp_path: Path
) -> None:
    """An empty rule (nothing counts) is not the default rule (None)."""
    data, samples = hand
    empty = Dataset.build(
        data.interactions.drop("user_idx", "item_idx"), data.items, data.users, positive_events=()
    )
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(empty, samples)
    assert PointInTimeFeatures.from_state(pit.config, _reload(pit, tmp_path)).positive_events == ()


def test_state_saved_before_the_rule_was_stored_means_the_default(
    fitted: PointInTimeFeatures,
) -> None:
    state = fitted.state()
    assert "positive_events" not in state  # the default rule is stored as no key
    old = {k: v for k, v in state.items() if k != "positive_events"}
    assert PointInTimeFeatures.from_state(fitted.config, old).positive_events is None
