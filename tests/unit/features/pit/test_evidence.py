"""Recall-evidence columns as dense features: fitted names, missing columns, persistence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.spec import RankFeatures

Identical = Callable[[RankFeatures, RankFeatures], None]


def _with_evidence(samples: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = samples.height
    return samples.with_columns(
        pl.Series("ev_itemcf_score", rng.exponential(size=n), dtype=pl.Float32),
        pl.Series("ev_itemcf_hit", rng.integers(0, 2, n), dtype=pl.Float32),
        pl.Series("ev_note", ["x"] * n),  # not numeric: not a feature
    )


def test_evidence_columns_become_the_last_dense_features(
    sim: tuple[Dataset, pl.DataFrame],
) -> None:
    data, samples = sim
    samples = _with_evidence(samples)
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, samples, data.interactions)
    assert pit.dense_names[-2:] == ("ev_itemcf_hit", "ev_itemcf_score")
    raw = pit.raw_dense(samples, data.interactions)
    np.testing.assert_allclose(raw[:, -1], samples["ev_itemcf_score"].to_numpy(), rtol=1e-6)
    dense = pit.transform(samples, data.interactions).dense
    assert abs(float(dense[:, -1].mean())) < 1e-3  # standardised like every dense feature


def test_a_missing_evidence_column_reads_as_zero(sim: tuple[Dataset, pl.DataFrame]) -> None:
    data, samples = sim
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, _with_evidence(samples), None)
    raw = pit.raw_dense(samples, data.interactions)
    assert raw.shape[1] == len(pit.dense_names)
    assert (raw[:, -2:] == 0).all()


def test_evidence_can_be_switched_off(sim: tuple[Dataset, pl.DataFrame]) -> None:
    data, samples = sim
    config = PointInTimeConfig(recall_evidence=False)
    pit = PointInTimeFeatures(config).fit(data, _with_evidence(samples), None)
    assert not any(n.startswith("ev_") for n in pit.dense_names)


def test_fitted_evidence_survives_the_state_round_trip(
    sim: tuple[Dataset, pl.DataFrame], assert_identical: Identical
) -> None:
    data, samples = sim
    samples = _with_evidence(samples)
    pit = PointInTimeFeatures(PointInTimeConfig()).fit(data, samples, None)
    back = PointInTimeFeatures.from_state(PointInTimeConfig(), pit.state())
    assert back.dense_names == pit.dense_names
    assert_identical(
        pit.transform(samples, data.interactions), back.transform(samples, data.interactions)
    )
