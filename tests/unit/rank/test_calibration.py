"""Down-sampling correction (closed form, simulated recovery of base rates) and the isotonic
calibrator (fit, transform, array-only state)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from funnelrec.metrics.rank import ece
from funnelrec.rank.calibration import (
    IsotonicCalibrator,
    calibrators_from_state,
    calibrators_state,
    correct_downsampling,
    correct_task_probabilities,
)


def test_correct_downsampling_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    w = rng.uniform(0.01, 1.0, 1000)
    expected = p / (p + (1 - p) / w)
    assert np.allclose(correct_downsampling(p, w), expected, rtol=1e-12, atol=0)
    assert np.allclose(correct_downsampling(p, 0.3), p / (p + (1 - p) / 0.3), rtol=1e-12)
    assert np.array_equal(correct_downsampling(p, 1.0), p)  # nothing dropped: identity
    edges = correct_downsampling(np.array([0.0, 1.0]), 1e-6)
    assert edges.tolist() == [0.0, 1.0]
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(correct_downsampling(grid, 0.1)) > 0)  # order (AUC) is kept
    assert correct_downsampling(grid.reshape(101, 1), np.array([0.1, 0.5])).shape == (101, 2)


@pytest.mark.parametrize(("p", "rate"), [([0.5, 1.2], 0.5), ([np.nan], 0.5), ([0.5], 0.0)])
def test_correct_downsampling_rejects_bad_input(p: list[float], rate: float) -> None:
    with pytest.raises(ValueError):
        correct_downsampling(np.array(p), rate)
    with pytest.raises(ValueError, match="keep_rate"):
        correct_downsampling(np.array([0.5]), 1.5)


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x [n, 2]``, click ``[n]`` (base rate ~ 8%) and order ``[n]`` (a subset of the clicks)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    click = rng.random(n) < 1 / (1 + np.exp(-(-3.0 + 1.2 * x[:, 0])))
    convert = rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 1.0 * x[:, 1])))
    return x, click.astype(float), (click & convert).astype(float)


def _downsample(negative: np.ndarray, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ~negative | (rng.random(negative.shape[0]) < rate)


def _fit_predict(x: np.ndarray, y: np.ndarray, keep: np.ndarray) -> np.ndarray:
    model = LogisticRegression(C=1e6, max_iter=1000).fit(x[keep], y[keep])
    return model.predict_proba(x)[:, 1]


def test_correction_recovers_the_base_rate_of_a_model_fit_on_downsampled_data() -> None:
    x, click, _ = _population(200_000, seed=1)
    rate = 0.1
    keep = _downsample(click == 0, rate, seed=2)
    q = _fit_predict(x, click, keep)
    base, se = click.mean(), click.std() / np.sqrt(click.size)
    assert q.mean() > 3 * base  # trained on ~10x fewer negatives: inflated
    p = correct_downsampling(q, rate)
    assert abs(p.mean() - base) < 4 * se + 0.002
    # Calibrated per bin, not only on average: as good as a model fit on all the data.
    full = _fit_predict(x, click, np.ones_like(keep))
    assert ece(click, p, n_bins=20) < ece(click, full, n_bins=20) + 0.003


def test_post_click_tasks_take_the_click_correction() -> None:
    x, click, order = _population(200_000, seed=3)
    rate = 0.1
    keep = _downsample(click == 0, rate, seed=4)  # all-zero rows: the click negatives
    q = {"click": _fit_predict(x, click, keep), "order": _fit_predict(x, order, keep)}
    p = correct_task_probabilities(q, rate)  # default: order follows the first task
    for task, y in (("click", click), ("order", order)):
        se = y.std() / np.sqrt(y.size)
        assert q[task].mean() > 2 * y.mean()
        assert abs(p[task].mean() - y.mean()) < 4 * se + 0.002, task
    assert np.allclose(p["click"], correct_downsampling(q["click"], rate))
    explicit = correct_task_probabilities(q, rate, {"click": None, "order": "click"})
    assert all(np.array_equal(explicit[t], p[t]) for t in p)
    alone = correct_task_probabilities(q, rate, {"click": None, "order": None})
    assert np.allclose(alone["order"], correct_downsampling(q["order"], rate))


def test_task_correction_keeps_post_click_below_click_and_rejects_cycles() -> None:
    q = {"click": np.array([0.0, 0.3, 0.9]), "cart": np.array([0.0, 0.2, 0.9])}
    q["order"] = np.array([0.0, 0.1, 0.5])
    chain = {"click": None, "cart": "click", "order": "cart"}
    p = correct_task_probabilities(q, 0.2, chain)
    assert np.all(p["order"] <= p["cart"]) and np.all(p["cart"] <= p["click"])
    # Every task takes the click's factor p_click / q_click (rows with q_click > 0).
    assert np.allclose(p["order"][1:] * q["click"][1:], q["order"][1:] * p["click"][1:])
    assert np.allclose(p["cart"][1:] * q["click"][1:], q["cart"][1:] * p["click"][1:])
    with pytest.raises(ValueError, match="cycle"):
        correct_task_probabilities(q, 0.2, {"click": "order", "order": "click"})


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Over-confident probabilities (logit doubled) and labels drawn from the true ones."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-1.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return 1 / (1 + np.exp(-2 * logit)), y


def test_isotonic_calibrator_fixes_a_miscalibrated_model() -> None:
    p_fit, y_fit = _miscalibrated(20_000, seed=5)
    p_test, y_test = _miscalibrated(20_000, seed=6)
    cal = IsotonicCalibrator().fit(p_fit, y_fit)
    out = cal.transform(p_test)
    assert ece(y_test, out) < 0.02 < ece(y_test, p_test)
    assert np.all(np.diff(cal.transform(np.linspace(0, 1, 201))) >= 0)  # monotone
    assert out.min() >= 0 and out.max() <= 1
    assert cal.transform(np.array([0.0, 1.0])).tolist() == [cal.values[0], cal.values[-1]]


def test_isotonic_calibrator_weighted_fit_undoes_subsampling() -> None:
    p, y = _miscalibrated(40_000, seed=7)
    keep = _downsample(y == 0, 0.2, seed=8)
    weight = np.where(y[keep] == 0, 1 / 0.2, 1.0)
    weighted = IsotonicCalibrator().fit(p[keep], y[keep], sample_weight=weight)
    plain = IsotonicCalibrator().fit(p[keep], y[keep])
    se = y.std() / np.sqrt(y.size)
    assert abs(weighted.transform(p).mean() - y.mean()) < 4 * se + 0.005
    assert plain.transform(p).mean() > y.mean() + 0.1


def test_isotonic_state_is_arrays_only_and_round_trips() -> None:
    p, y = _miscalibrated(2000, seed=9)
    cal = IsotonicCalibrator().fit(p, y)
    state = cal.state()
    assert set(state) == {"thresholds", "values"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in state.values())
    back = IsotonicCalibrator.from_state(state)
    grid = np.linspace(0, 1, 57)
    assert np.array_equal(back.transform(grid), cal.transform(grid))
    many = calibrators_from_state(calibrators_state({"click": cal, "order": back}))
    assert list(many) == ["click", "order"]
    assert np.array_equal(many["order"].transform(grid), cal.transform(grid))
    # A state written to .npz (no pickle) loads back.
    buffer = io.BytesIO()
    np.savez(buffer, **calibrators_state({"click": cal}))
    buffer.seek(0)
    loaded = dict(np.load(buffer, allow_pickle=False))
    restored = calibrators_from_state(loaded)["click"]
    assert np.array_equal(restored.transform(grid), cal.transform(grid))


def test_isotonic_calibrator_errors() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        IsotonicCalibrator().transform(np.array([0.5]))
    with pytest.raises(RuntimeError, match="not fitted"):
        IsotonicCalibrator().state()
    with pytest.raises(ValueError, match="non-decreasing"):
        IsotonicCalibrator([0.5, 0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match="same non-empty"):
        IsotonicCalibrator([0.1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        IsotonicCalibrator([0.1, 0.2], [0.1, 1.5])
    with pytest.raises(ValueError, match="binary"):
        IsotonicCalibrator().fit(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="non-empty"):
        IsotonicCalibrator().fit(np.array([]), np.array([]))
    assert not IsotonicCalibrator().fitted and IsotonicCalibrator([0.0], [0.5]).fitted
