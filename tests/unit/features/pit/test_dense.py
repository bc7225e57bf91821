"""Dense statistics computed by hand on a small log, and the positive rule they follow."""

from __future__ import annotations

import math

import polars as pl
import pytest

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures

DAY = 86400
lg = math.log1p


def _raw(data: Dataset, samples: pl.DataFrame, cfg: PointInTimeConfig) -> dict[str, float]:
    pit = PointInTimeFeatures(cfg).fit(data, samples, data.interactions)
    raw = pit.raw_dense(samples, data.interactions)[0]
    return dict(zip(pit.dense_names, raw.tolist(), strict=True))


def test_hand_computed_counts_and_recency(hand: tuple[Dataset, pl.DataFrame]) -> None:
    data, samples = hand
    raw = _raw(data, samples, PointInTimeConfig(ctr_prior=0.0, seq_len=4))
    expected = {
        "u_pos_1d": lg(0),
        "u_pos_7d": lg(3),  # click a, click c, order c
        "u_pos_30d": lg(3),
        "u_pos_all": lg(3),
        "u_recency": lg(3 * DAY - 100),  # since the order at 2 d + 100 s
        "u_imp_all": lg(3),  # a, b, c; not the sample's own impression
        "u_ctr": 2 / 3,
        "i_pos_1d": lg(0),
        "i_pos_7d": lg(2),  # u0 at +10 s, u1 at 3 d
        "i_pos_all": lg(2),
        "i_recency": lg(2 * DAY),
        "i_imp_all": lg(1),
        "i_ctr": 1.0,  # 2 clicks / 1 impression, capped
        "i_age": lg(5 * DAY + 1000),
        "uc_pos_1d": lg(0),
        "uc_pos_7d": lg(1),  # category X: click a
        "uc_pos_all": lg(1),
        "uc_share": 1 / 3,
        "ui_pos_all": lg(1),
        "ui_imp_all": lg(1),
    }
    for name, value in expected.items():
        assert raw[name] == pytest.approx(value), name
    for name, value in expected.items():
        assert raw[name] == pytest.approx(value), name


def test_positive_rule_comes_from_the_dataset(
    hand_orders_only: tuple[Dataset, pl.DataFrame],
) -> None:
    """With ``data.positive_events = ("order",)`` a click is not a positive: only the order of
    item c counts, though the clicks still drive CTR (the ``ctr_event``)."""
    data, samples = hand_orders_only
    raw = _raw(data, samples, PointInTimeConfig(ctr_prior=0.0, seq_len=4))
    cap = lg(365 * DAY)  # recency with no positive at all
    expected = {
        "u_pos_1d": lg(0),
        "u_pos_7d": lg(1),  # the order of c only; the clicks of a and c do not count
        "u_pos_all": lg(1),
        "u_recency": lg(3 * DAY - 100),
        "u_imp_all": lg(3),
        "u_ctr": 2 / 3,  # CTR still counts clicks over impressions
        "i_pos_all": lg(0),  # item a only ever had clicks
        "i_recency": cap,
        "uc_pos_all": lg(0),  # category X: click a no longer counts
        "uc_share": 0.0,
        "ui_pos_all": lg(0),
    }
    for name, value in expected.items():
        assert raw[name] == pytest.approx(value), name
