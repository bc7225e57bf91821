"""Delayed-feedback methods on synthetic censored data with a known conversion rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funnelrec.rank.delay.losses import DelayLoss
from funnelrec.rank.delay.methods import METHODS, DelayMethodConfig, fit_method, replay
from funnelrec.rank.delay.model import DelayFitConfig, predict_cvr
from funnelrec.train.config import TrainLoopConfig

DAY = 86_400
FAST = DelayMethodConfig(
    fit=DelayFitConfig(batch_size=512, loop=TrainLoopConfig(epochs=6, lr=0.03))
)


def _samples(window_s: float):
    """Two groups (rates 0.1 and 0.3) with exponential delays of mean 2 days."""
    rng = np.random.default_rng(0)
    n = 6_000
    group = rng.integers(0, 2, n)
    rate = np.where(group == 0, 0.1, 0.3)
    delay = np.where(rng.random(n) < rate, rng.exponential(2 * DAY, n), np.inf)
    t = rng.integers(0, 60 * DAY, n)
    s = replay(group[:, None].astype(np.int64), t, delay, cutoff=60 * DAY, window_s=window_s)
    return s, np.array([[0], [1]], dtype=np.int64), np.array([0.1, 0.3])


@pytest.mark.parametrize("method", METHODS)
def test_corrected_methods_close_the_naive_gap(method: str) -> None:
    s, x, truth = _samples(window_s=DAY / 4)
    pred = predict_cvr(fit_method(method, s, (2,), FAST, seed=0), x)  # type: ignore[arg-type]
    if method == "naive":
        assert (pred < 0.5 * truth).all()  # a 6 h window sees about 12% of the conversions
    else:
        np.testing.assert_allclose(pred, truth, rtol=0.35)


def test_dfm_loss_is_the_exponential_likelihood() -> None:
    z, log_rate = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])
    batch = {
        "label": torch.tensor([1.0, 0.0]),
        "delay": torch.tensor([1.0, 0.0]),
        "elapsed": torch.tensor([0.0, 2.0]),
    }
    loss = DelayLoss("dfm")({"cvr": z, "log_rate": log_rate}, batch)["loss"]
    # positive: log 0.5 + 0 - 1; pending: log(0.5 + 0.5 e^-2)
    expected = -(np.log(0.5) - 1.0 + np.log(0.5 + 0.5 * np.exp(-2.0))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-6)
