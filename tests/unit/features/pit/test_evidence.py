"""Recall-evidence columns as dense features: fitted names, missing columns, persistence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.data.dataset import Dataset
from funnelrec.features.pit import PointInTimeConfig, PointInTimeFeatures
from funnelrec.features.pit.evidence import read_evidence
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


def test_read_evidence_reads_every_numeric_dtype_as_a_float64_cast() -> None:
    """The per-column NumPy read gives what one polars Float64 cast of each column gives:
    nulls, NaN and infinities read 0; integers, Decimals and booleans their value; a fitted
    column the samples lack reads 0."""
    big = 2**53 + 1  # not a float64: both reads must round it the same way
    samples = pl.DataFrame(
        {
            "ev_f32": pl.Series([1.5, None, float("nan"), float("inf")], dtype=pl.Float32),
            "ev_f64": [0.1, -2.0, float("-inf"), None],
            "ev_i64": pl.Series([1, None, big, -3], dtype=pl.Int64),
            "ev_u64": pl.Series([big, 0, 7, 2**64 - 1], dtype=pl.UInt64),
            "ev_i8": pl.Series([1, 2, 3, -4], dtype=pl.Int8),
            "ev_dec": pl.Series(["1.25", "2", None, "-0.5"]).str.to_decimal(),
            "ev_bool": [True, False, None, True],
        }
    )
    names = (*samples.columns, "ev_missing")
    expected = samples.select(pl.all().cast(pl.Float64)).to_numpy().T
    expected = np.nan_to_num(expected, nan=0.0, posinf=0.0, neginf=0.0)
    block = read_evidence(samples, names)
    np.testing.assert_array_equal(block[:-1], expected)
    assert (block[-1] == 0).all()
