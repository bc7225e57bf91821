"""Delayed-feedback methods over a replay of the label stream up to a training cutoff.

The setting (Chapelle 2014; Yasui et al. 2020; Yang et al. 2021; Gu et al. 2021): each
exposure (here a click) may convert after a delay. A training job at time ``cutoff`` with a
*label window* ``w`` sees, per exposure at ``t`` (only those with ``t + w <= cutoff``, so the
window is complete, as the ranking pipeline drops slates whose label windows are not):

* the window label ``1[delay <= w]`` (what a pipeline that reads labels ``w`` after the
  exposure trains on: the *naive* model);
* the conversions that came later but before the cutoff (the "late" or delayed positives a
  stream re-emits as corrections), and each exposure's elapsed time ``cutoff - t``.

The methods, all on the same model (:class:`~funnelrec.rank.delay.model.DelayNet`):

* ``naive``: BCE on the window label (under-predicts by the share converting after ``w``);
* ``dfm``: Chapelle's delayed feedback model on the labels at the cutoff, elapsed times and
  observed delays (exponential delay, fitted jointly);
* ``fsiw``: BCE on the window label, positives weighted ``1 / P(delay <= w | converts, x)``,
  negatives ``P(never converts | negative in the window, x)`` (feedback shift importance
  weighting; the two auxiliary classifiers are fitted on *mature* exposures, old enough that
  their conversions are known at the cutoff);
* ``esdfm``: the stream with each late positive duplicated as a positive; weights ``1 + f_dp``
  on positives and ``(1 + f_dp) f_rn`` on negatives (``f_dp = P(late positive | x)``,
  ``f_rn = P(real negative | negative in the window, x)``);
* ``defer``: every exposure ingested twice, at the window (window label) and again at the
  cutoff with its label by then (DEFER's duplicate at the end of the attribution window,
  replayed in one batch); weights from ``f_dp`` and the model's own rate (losses.py).

This is a batch replay of the stream (one fit at the cutoff), not an online learner: the
methods see the same events a streaming learner would have by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.rank.delay.losses import DelayLoss
from funnelrec.rank.delay.model import DelayFitConfig, DelayNet, fit_delay_model, predict_cvr

__all__ = ["METHODS", "DelayMethodConfig", "DelayedSamples", "Method", "fit_method", "replay"]

Method = Literal["naive", "dfm", "fsiw", "esdfm", "defer"]
METHODS: tuple[Method, ...] = ("naive", "dfm", "fsiw", "esdfm", "defer")
DAY_S = 86_400.0
_MIN_PROB = 0.02  # floor of the auxiliary probabilities that enter a weight as a divisor


class DelayMethodConfig(BaseModel):
    """Shared settings of the delayed-feedback methods.

    Example:
        >>> DelayMethodConfig().mature_s / 86400
        21.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    fit: DelayFitConfig = Field(default_factory=DelayFitConfig)
    mature_s: float = Field(
        21 * DAY_S,
        gt=0,
        description="Exposures at least this old at the cutoff train the auxiliary models "
        "(their conversions are taken as known).",
    )


@dataclass(frozen=True, slots=True)
class DelayedSamples:
    """Exposures as a training job at ``cutoff`` sees them (``N`` exposures, ``F`` fields).

    Attributes:
        x: ``[N, F]`` int64 field codes.
        t: ``[N]`` int64 exposure times.
        delay: ``[N]`` float64 conversion delay (s) where it happened by the cutoff, else inf.
        cutoff: the training time (unix s).
        window_s: the label window (s).
    """

    x: NDArray[np.int64]
    t: NDArray[np.int64]
    delay: NDArray[np.float64]
    cutoff: int
    window_s: float

    @property
    def window_label(self) -> NDArray[np.float32]:
        return (self.delay <= self.window_s).astype(np.float32)

    @property
    def cutoff_label(self) -> NDArray[np.float32]:
        return np.isfinite(self.delay).astype(np.float32)

    @property
    def late(self) -> NDArray[np.bool_]:
        return np.isfinite(self.delay) & (self.delay > self.window_s)


def replay(
    x: NDArray[np.int64],
    t: NDArray[np.int64],
    delay: NDArray[np.float64],
    *,
    cutoff: int,
    window_s: float,
) -> DelayedSamples:
    """The exposures a job at ``cutoff`` trains on, their delays censored at the cutoff.

    Keeps exposures whose label window has closed (``t + window_s <= cutoff``) and hides
    conversions after the cutoff (``t + delay > cutoff``: delay becomes inf).

    Example:
        >>> s = replay(np.zeros((3, 1), np.int64), np.array([0, 50, 97]),
        ...     np.array([10.0, 60.0, 1.0]), cutoff=100, window_s=5)
        >>> s.delay.tolist(), s.window_label.tolist(), s.cutoff_label.tolist()
        ([10.0, inf], [0.0, 0.0], [1.0, 0.0])
    """
    keep = t + window_s <= cutoff
    t, delay = t[keep], delay[keep]
    seen = np.where(t + delay <= cutoff, delay, np.inf)
    return DelayedSamples(x[keep], t, seen, cutoff, float(window_s))


def _aux(
    s: DelayedSamples,
    rows: NDArray[np.bool_],
    label: NDArray[np.bool_],
    cards: tuple[int, ...],
    cfg: DelayMethodConfig,
    seed: int,
) -> NDArray[np.float64]:
    """``[N]`` probabilities of an auxiliary classifier of ``label`` fitted on ``rows``."""
    if not rows.any() or label[rows].all() or not label[rows].any():
        # Degenerate (no mature rows, or one class only): the empirical rate is the estimate.
        rate = float(label[rows].mean()) if rows.any() else 0.0
        return np.full(s.x.shape[0], rate)
    targets = {"label": label[rows], "weight": np.ones(int(rows.sum()))}
    model = fit_delay_model(s.x[rows], targets, DelayLoss("bce"), cards, cfg.fit, seed=seed)
    return predict_cvr(model, s.x)


def _targets(
    method: Method, s: DelayedSamples, cards: tuple[int, ...], cfg: DelayMethodConfig, seed: int
) -> tuple[NDArray[np.int64], dict[str, NDArray]]:
    """``(x [M, F], batch targets)`` of one method: its rows (with duplicates) and weights."""
    n = s.x.shape[0]
    y_w, ones = s.window_label, np.ones(n, dtype=np.float32)
    if method == "naive":
        return s.x, {"label": y_w, "weight": ones}
    if method == "dfm":
        delay = np.where(np.isfinite(s.delay), s.delay, 0.0) / DAY_S
        return s.x, {"label": s.cutoff_label, "delay": delay, "elapsed": (s.cutoff - s.t) / DAY_S}
    mature = s.t <= s.cutoff - cfg.mature_s
    converted = np.isfinite(s.delay)
    f_dp = _aux(s, mature, s.late, cards, cfg, seed + 1)
    if method == "defer":
        x2 = np.concatenate([s.x, s.x])
        return x2, {"label": np.concatenate([y_w, s.cutoff_label]), "f_dp": np.tile(f_dp, 2)}
    f_rn = _aux(s, mature & (y_w == 0), ~converted, cards, cfg, seed + 2)
    if method == "fsiw":
        in_window = _aux(s, mature & converted, s.delay <= s.window_s, cards, cfg, seed + 3)
        weight = np.where(y_w > 0, 1.0 / np.maximum(in_window, _MIN_PROB), f_rn)
        return s.x, {"label": y_w, "weight": weight}
    # esdfm: late positives re-enter the stream as positives.
    dup = np.flatnonzero(s.late)
    x2 = np.concatenate([s.x, s.x[dup]])
    y2 = np.concatenate([y_w, np.ones(dup.shape[0], dtype=np.float32)])
    dp2 = np.concatenate([f_dp, f_dp[dup]])
    rn2 = np.concatenate([f_rn, f_rn[dup]])
    weight = np.where(y2 > 0, 1.0 + dp2, (1.0 + dp2) * rn2)
    return x2, {"label": y2, "weight": weight}


def fit_method(
    method: Method,
    samples: DelayedSamples,
    cardinalities: tuple[int, ...],
    config: DelayMethodConfig,
    *,
    seed: int,
) -> DelayNet:
    """Fit one delayed-feedback method (module docstring) on ``samples``.

    Returns:
        The fitted model; :func:`~funnelrec.rank.delay.model.predict_cvr` gives ``P(convert
        eventually | x)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = rng.integers(0, 40 * 86400, 400)
        >>> d = np.where(rng.random(400) < 0.5, rng.exponential(86400, 400), np.inf)
        >>> s = replay(np.zeros((400, 1), np.int64), t, d, cutoff=40 * 86400, window_s=3600)
        >>> from funnelrec.train.config import TrainLoopConfig
        >>> fast = DelayMethodConfig(fit=DelayFitConfig(batch_size=100,
        ...     loop=TrainLoopConfig(epochs=20, lr=0.05)))
        >>> [round(float(predict_cvr(fit_method(m, s, (1,), fast, seed=0), s.x[:1])[0]), 1)
        ...  for m in ("naive", "dfm")]
        [0.0, 0.5]
    """
    x, targets = _targets(method, samples, cardinalities, config, seed)
    loss = DelayLoss("dfm" if method == "dfm" else "defer" if method == "defer" else "bce")
    return fit_delay_model(x, targets, loss, cardinalities, config.fit, seed=seed)
