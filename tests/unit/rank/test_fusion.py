"""Score fusion formulas (hand-checked) and the offline weight tuner."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from funnelrec.rank.fusion import (
    FusionConfig,
    FusionTarget,
    fuse,
    fusion_value,
    search_fusion,
)

PROBS = {
    "click": np.array([0.5, 0.2, 0.0]),
    "cart": np.array([0.1, 0.3, 0.2]),
    "order": np.array([0.02, 0.1, 0.05]),
}


def test_weighted_sum_hand_checked() -> None:
    cfg = FusionConfig(kind="weighted_sum", weights={"click": 1.0, "order": 10.0})
    np.testing.assert_allclose(fuse(PROBS, cfg), [0.5 + 0.2, 0.2 + 1.0, 0.0 + 0.5])


def test_power_product_hand_checked() -> None:
    cfg = FusionConfig(kind="power_product", weights={"click": 2.0, "cart": 0.5})
    expected = [0.5**2 * 0.1**0.5, 0.2**2 * 0.3**0.5]
    np.testing.assert_allclose(fuse(PROBS, cfg)[:2], expected, rtol=1e-12)


def test_power_product_zero_probability_is_floored_not_nan() -> None:
    cfg = FusionConfig(kind="power_product", weights={"click": 1.0}, eps=1e-6)
    out = fuse(PROBS, cfg)
    assert out[2] == pytest.approx(1e-6)
    assert np.all(np.isfinite(out))


def test_power_product_zero_weight_ignores_task() -> None:
    cfg = FusionConfig(kind="power_product", weights={"click": 0.0, "order": 1.0})
    np.testing.assert_allclose(fuse(PROBS, cfg), PROBS["order"])


def test_power_product_no_underflow_in_log_space() -> None:
    p = {"a": np.array([1e-200, 1e-201])}
    cfg = FusionConfig(kind="power_product", weights={"a": 0.5}, eps=1e-300)
    out = fuse(p, cfg)
    assert out[0] > out[1] > 0


def test_unknown_task_in_weights_raises() -> None:
    cfg = FusionConfig(weights={"click": 1.0, "purchase": 1.0})
    with pytest.raises(ValueError, match=r"unknown tasks \['purchase'\]"):
        fuse(PROBS, cfg)


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        FusionConfig(weights={})
    with pytest.raises(ValidationError):
        FusionConfig(weights={"click": math.inf})
    with pytest.raises(ValidationError):
        FusionConfig(kind="max", weights={"click": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FusionConfig(weights={"click": 1.0}, normalise=True)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FusionTarget(value_weights={"order": -1.0})
    with pytest.raises(ValidationError):
        FusionTarget(value_weights={"order": 0.0})


def test_fusion_value() -> None:
    labels = {
        "click": np.array([1, 1, 0]),
        "cart": np.array([0, 1, 0]),
        "order": np.array([0, 1, 0]),
    }
    value = fusion_value(labels, {"click": 1, "cart": 3, "order": 10})
    np.testing.assert_allclose(value, [1.0, 14.0, 0.0])
    with pytest.raises(ValueError, match="unknown tasks"):
        fusion_value(labels, {"like": 1.0})


def planted(seed: int, n_groups: int = 150, size: int = 20):
    """Order propensity is only visible in p_order; click/cart are unrelated to orders."""
    rng = np.random.default_rng(seed)
    n = n_groups * size
    group = np.repeat(np.arange(n_groups, dtype=np.int64), size)
    order_logit = rng.normal(size=n) * 2 - 3
    order = (rng.random(n) < 1 / (1 + np.exp(-order_logit))).astype(np.float32)
    click_p = rng.random(n) * 0.5
    click = (rng.random(n) < click_p).astype(np.float32)
    cart_p = rng.random(n) * 0.3
    cart = (rng.random(n) < cart_p).astype(np.float32)
    probs = {
        "click": click_p,
        "cart": cart_p,
        "order": 1 / (1 + np.exp(-(order_logit + rng.normal(size=n) * 0.3))),
    }
    return probs, {"click": click, "cart": cart, "order": order}, group


@pytest.mark.parametrize("kind", ["power_product", "weighted_sum"])
@pytest.mark.parametrize("method", ["random", "grid"])
def test_planted_order_value_puts_weight_on_order(kind: str, method: str) -> None:
    probs, labels, group = planted(0)
    target = FusionTarget(metric="ndcg", k=10, value_weights={"order": 1.0})
    res = search_fusion(
        probs,
        labels,
        group,
        target,
        n_trials=64,
        rng=np.random.default_rng(0),
        method=method,
        kind=kind,  # type: ignore[arg-type]
    )
    w = res.best.weights
    assert res.best.kind == kind
    assert w["order"] > 0.6
    assert w["order"] > w["click"] + w["cart"]
    assert sum(w.values()) == pytest.approx(1.0)
    assert res.best_value > res.baseline_value + 0.05
    # trial 0 is uniform and the recorded best matches re-evaluation of the best config
    assert res.trials["w_order"][0] == pytest.approx(1 / 3)
    assert res.trials["value"].max() == res.best_value


def test_gauc_target_also_finds_order() -> None:
    probs, labels, group = planted(1)
    target = FusionTarget(metric="gauc", value_weights={"order": 1.0})
    res = search_fusion(probs, labels, group, target, n_trials=40, rng=np.random.default_rng(5))
    assert res.best.weights["order"] > 0.6
    assert res.best_value > res.baseline_value


def test_search_is_deterministic_per_seed() -> None:
    probs, labels, group = planted(2, n_groups=40)
    target = FusionTarget(value_weights={"click": 1, "cart": 3, "order": 10})
    a = search_fusion(probs, labels, group, target, n_trials=15, rng=np.random.default_rng(9))
    b = search_fusion(probs, labels, group, target, n_trials=15, rng=np.random.default_rng(9))
    c = search_fusion(probs, labels, group, target, n_trials=15, rng=np.random.default_rng(10))
    assert a.trials.equals(b.trials)
    assert a.best == b.best
    assert not a.trials.equals(c.trials)
    assert a.trials.columns == ["trial", "w_click", "w_cart", "w_order", "value"]
    assert a.trials.height == 15


def test_grid_trial_count_and_uniqueness() -> None:
    probs, labels, group = planted(3, n_groups=20)
    target = FusionTarget(value_weights={"order": 1.0})
    res = search_fusion(
        probs, labels, group, target, n_trials=30, rng=np.random.default_rng(0), method="grid"
    )
    # m = 3 levels (3**3 = 27 <= 30): 26 non-zero points, 19 distinct directions
    assert res.trials.height == 19
    w = res.trials.select("w_click", "w_cart", "w_order").to_numpy()
    assert np.unique(w.round(9), axis=0).shape[0] == 19


def test_search_unknown_value_task_raises() -> None:
    probs, labels, group = planted(4, n_groups=5)
    with pytest.raises(ValueError, match="unknown tasks"):
        search_fusion(
            probs,
            labels,
            group,
            FusionTarget(value_weights={"purchase": 1.0}),
            n_trials=3,
            rng=np.random.default_rng(0),
        )
