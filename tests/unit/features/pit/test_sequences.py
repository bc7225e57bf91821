"""Behaviour sequences: last L events, most recent first, which events they hold."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures

DAY = 86400
lg = math.log1p


def test_hand_computed_sequence(hand: tuple[Dataset, pl.DataFrame]) -> None:
    data, samples = hand
    cfg = PointInTimeConfig(seq_len=4)
    feats = PointInTimeFeatures(cfg).fit(data, samples).transform(samples, data.interactions)
    # Most recent first: order c, click c, click a; then padding.
    assert feats.seq_item[0].tolist() == [3, 3, 1, 0]
    assert feats.seq_category[0].tolist() == [2, 2, 1, 0]
    np.testing.assert_allclose(
        feats.seq_gap[0], [lg(3 * DAY - 100), lg(3 * DAY), lg(5 * DAY - 10), 0.0], rtol=1e-6
    )
    clicks_only = PointInTimeFeatures(cfg.model_copy(update={"seq_events": ("click",)}))
    seq = clicks_only.fit(data, samples).transform(samples, data.interactions).seq_item
    assert seq[0].tolist() == [3, 1, 0, 0]


def test_sequence_follows_the_positive_rule_unless_overridden(
    hand_orders_only: tuple[Dataset, pl.DataFrame],
) -> None:
    data, samples = hand_orders_only
    cfg = PointInTimeConfig(seq_len=4)
    feats = PointInTimeFeatures(cfg).fit(data, samples).transform(samples, data.interactions)
    assert feats.seq_item[0].tolist() == [3, 0, 0, 0]  # the order of c only
    clicks = PointInTimeFeatures(cfg.model_copy(update={"seq_events": ("click",)}))
    seq = clicks.fit(data, samples).transform(samples, data.interactions).seq_item
    assert seq[0].tolist() == [3, 1, 0, 0]
