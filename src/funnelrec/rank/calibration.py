"""Calibrated probabilities from the ranking models: undo negative down-sampling, then
(optionally) an isotonic map fitted on held-out samples.

**Down-sampling.** A model fitted on samples whose negatives were kept at rate ``w`` (see
``max_negatives_per_query`` in :mod:`funnelrec.rank.samples`) learns odds ``1 / w`` times too
high: its ``q`` must become ``p = q / (q + (1 - q) / w)`` (He et al. 2014, "Practical lessons
from predicting clicks on ads at Facebook"), :func:`correct_downsampling`.

Subsampling drops all-zero-label samples only, i.e. negatives of the exposure-level task
(click). A post-click task (``TaskLabel.after``) has its positives inside the click positives,
so its sampled probability is ``q_t = P(t) / Z`` with the same ``Z = p_click / q_click`` and
``p_t = q_t * p_click / q_click``: :func:`correct_task_probabilities` applies the click's
factor to every task that follows it (for ESMM, whose ``pCTCVR = pCTR * pCVR``, this corrects
pCTR and leaves pCVR, fitted on the never-subsampled clicks, alone). The correction is exact
for a root task only when the all-zero samples are exactly its negatives, i.e. every other
task follows it; a second unconditioned task is corrected approximately.

**Probabilities only.** Both corrections read their inputs as probabilities. The list
objectives (``rank.train.loss="listwise"``, LightGBM ``objective="lambdarank"``) output
``sigmoid(ranking score)``: scores defined up to a per-query shift, with no odds for the
down-sampling correction to rescale, so :class:`~funnelrec.rank.ranker.Ranker` leaves them
uncorrected (``RankConfig.outputs_probabilities``) rather than pretend to calibrate them.

**Isotonic calibration.** :class:`IsotonicCalibrator` is a monotone map fitted on held-out
``(probability, label)`` pairs (weighted by ``neg_weight`` when those samples were
subsampled). Its state is two float arrays (thresholds, values), saved without pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "IsotonicCalibrator",
    "calibrators_from_state",
    "calibrators_state",
    "correct_downsampling",
    "correct_task_probabilities",
]


def _rate(keep_rate: ArrayLike) -> NDArray[np.float64]:
    w = np.asarray(keep_rate, dtype=np.float64)
    if not np.all((w > 0) & (w <= 1)):
        raise ValueError("keep_rate must lie in (0, 1]")
    return w


def _probabilities(p: ArrayLike) -> NDArray[np.float64]:
    q = np.asarray(p, dtype=np.float64)
    if not np.all((q >= 0) & (q <= 1)):  # also rejects NaN
        raise ValueError("probabilities must lie in [0, 1]")
    return q


def _factor(q: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """``correct(q) / q = w / (q w + 1 - q)``, finite at ``q = 0`` (its limit ``w``) and exactly
    ``1 / q`` at ``q = 1`` (so 1 stays 1)."""
    return w / (q * w + (1.0 - q))


def correct_downsampling(p: ArrayLike, keep_rate: ArrayLike) -> NDArray[np.float64]:
    """Probabilities of a model trained with negatives kept at ``keep_rate``, corrected.

    ``p / (p + (1 - p) / keep_rate)``, computed as ``p w / (p w + 1 - p)`` (no division by a
    small ``w``). It fixes 0 and 1, is increasing in ``p`` and is the identity for ``w = 1``.

    Args:
        p: ``[N]`` (any shape) predicted probabilities in ``[0, 1]``.
        keep_rate: the negatives' keep rate ``w`` in ``(0, 1]``: a scalar, or an array that
            broadcasts against ``p`` (e.g. per sample).

    Returns:
        ``[N]`` float64 corrected probabilities.

    Raises:
        ValueError: ``p`` outside ``[0, 1]`` (or NaN), ``keep_rate`` outside ``(0, 1]``.

    Example:
        >>> correct_downsampling(np.array([0.0, 0.5, 0.8, 1.0]), 0.25).round(6).tolist()
        [0.0, 0.2, 0.5, 1.0]
    """
    q = _probabilities(p)
    w = _rate(keep_rate)
    return q * _factor(q, w)


def correct_task_probabilities(
    probs: Mapping[str, ArrayLike],
    keep_rate: float,
    parents: Mapping[str, str | None] | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Undo negative down-sampling for every task (module docstring).

    A root task gets :func:`correct_downsampling`; a task that follows another (``parents``)
    is multiplied by its root's factor ``p_root / q_root``, so ``p_t <= p_root`` still holds
    wherever ``q_t <= q_root`` did.

    Args:
        probs: ``{task: [N] probabilities}`` of the model.
        keep_rate: the negatives' keep rate, e.g.
            :func:`~funnelrec.rank.samples.negative_keep_rate` of the training samples.
        parents: ``{task: the task it follows or None}``, e.g.
            :func:`~funnelrec.rank.labels.task_parents` of the sample config's tasks; parents
            missing from ``probs`` count as None. Default: the first task of ``probs`` is the
            root and every other task follows it (the convention of
            :data:`~funnelrec.rank.labels.TASK_CATALOGUE` and of ESMM).

    Returns:
        ``{task: [N] float64}`` in the order of ``probs``.

    Raises:
        ValueError: bad probabilities or keep rate, or ``parents`` form a cycle.

    Example:
        >>> out = correct_task_probabilities(
        ...     {"click": np.array([0.8]), "order": np.array([0.4])}, keep_rate=0.25)
        >>> round(float(out["click"][0]), 6), round(float(out["order"][0]), 6)  # x 0.5 / 0.8
        (0.5, 0.25)
    """
    w = _rate(keep_rate)
    raw = {t: _probabilities(p) for t, p in probs.items()}
    names = list(raw)
    if parents is None:
        parents = {t: (names[0] if i else None) for i, t in enumerate(names)}
    factors: dict[str, NDArray[np.float64]] = {}

    def factor(task: str, seen: tuple[str, ...]) -> NDArray[np.float64]:
        if task in seen:
            raise ValueError(f"tasks follow each other in a cycle: {' -> '.join((*seen, task))}")
        if task not in factors:
            parent = parents.get(task)
            if parent is None or parent == task or parent not in raw:
                factors[task] = _factor(raw[task], w)
            else:
                factors[task] = factor(parent, (*seen, task))
        return factors[task]

    return {t: raw[t] * factor(t, ()) for t in names}


class IsotonicCalibrator:
    """A monotone map from model probabilities to observed rates, fitted on held-out samples.

    Piecewise linear between ``thresholds`` (increasing model probabilities) and ``values``
    (calibrated probabilities), constant beyond the ends: sklearn's ``IsotonicRegression``
    with ``out_of_bounds="clip"``, kept as its two arrays.

    Args:
        thresholds: ``[K]`` increasing inputs of a fitted map (from :meth:`state`), or None.
        values: ``[K]`` non-decreasing outputs in ``[0, 1]``, or None.

    Example:
        >>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.7, 0.9]), np.array([0, 0, 1, 1]))
        >>> cal.transform(np.array([0.0, 0.45, 1.0])).round(6).tolist()
        [0.0, 0.5, 1.0]
        >>> IsotonicCalibrator.from_state(cal.state()).transform(np.array([0.45])).round(6)
        array([0.5])
    """

    def __init__(
        self, thresholds: ArrayLike | None = None, values: ArrayLike | None = None
    ) -> None:
        self.thresholds: NDArray[np.float64] | None = None
        self.values: NDArray[np.float64] | None = None
        if thresholds is not None or values is not None:
            self._set(thresholds, values)

    def _set(self, thresholds: ArrayLike | None, values: ArrayLike | None) -> None:
        x = np.asarray(thresholds if thresholds is not None else [], dtype=np.float64)
        y = np.asarray(values if values is not None else [], dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError(f"thresholds {x.shape} and values {y.shape}: same non-empty 1-D")
        if np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ValueError("thresholds and values must be non-decreasing")
        if not np.all((y >= 0) & (y <= 1)):
            raise ValueError("values must lie in [0, 1]")
        self.thresholds, self.values = x, y

    @property
    def fitted(self) -> bool:
        return self.thresholds is not None

    def fit(self, p: ArrayLike, labels: ArrayLike, sample_weight: ArrayLike | None = None) -> Self:
        """Fit the map on held-out ``[N]`` probabilities and 0/1 labels.

        Args:
            p: ``[N]`` model probabilities (after :func:`correct_downsampling`, if used).
            labels: ``[N]`` binary labels.
            sample_weight: ``[N]`` non-negative weights, e.g.
                :func:`~funnelrec.rank.samples.negative_weights` of subsampled samples.

        Raises:
            ValueError: empty input, mismatched shapes, labels not 0/1.
        """
        from sklearn.isotonic import IsotonicRegression  # deferred: sklearn is slow to import

        q = _probabilities(p).reshape(-1)
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        if q.size == 0 or q.shape != y.shape:
            raise ValueError(f"need matching non-empty p {q.shape} and labels {y.shape}")
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be binary (0/1)")
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(q, y, sample_weight=weight)
        self._set(model.X_thresholds_, np.clip(model.y_thresholds_, 0.0, 1.0))
        return self

    def transform(self, p: ArrayLike) -> NDArray[np.float64]:
        """Calibrated ``[N]`` probabilities (inputs outside the fitted range take the end values).

        Raises:
            RuntimeError: not fitted.
        """
        if self.thresholds is None or self.values is None:
            raise RuntimeError("the calibrator is not fitted")
        return np.interp(_probabilities(p), self.thresholds, self.values)

    def state(self) -> dict[str, NDArray[np.float64]]:
        """``{"thresholds": [K], "values": [K]}`` float64 arrays (no pickle needed)."""
        if self.thresholds is None or self.values is None:
            raise RuntimeError("the calibrator is not fitted")
        return {"thresholds": self.thresholds.copy(), "values": self.values.copy()}

    @classmethod
    def from_state(cls, state: Mapping[str, ArrayLike]) -> IsotonicCalibrator:
        """The calibrator :meth:`state` describes."""
        return cls(state["thresholds"], state["values"])


def calibrators_state(calibrators: Mapping[str, IsotonicCalibrator]) -> dict[str, NDArray]:
    """``{"<task>.thresholds": [K], "<task>.values": [K]}`` for every task's calibrator.

    Example:
        >>> cal = IsotonicCalibrator([0.0, 1.0], [0.1, 0.9])
        >>> sorted(calibrators_state({"click": cal}))
        ['click.thresholds', 'click.values']
    """
    return {
        f"{task}.{key}": value
        for task, calibrator in calibrators.items()
        for key, value in calibrator.state().items()
    }


def calibrators_from_state(state: Mapping[str, ArrayLike]) -> dict[str, IsotonicCalibrator]:
    """Inverse of :func:`calibrators_state` (task names are identifiers: no dots)."""
    tasks = dict.fromkeys(key.rsplit(".", 1)[0] for key in state)  # state order
    return {t: IsotonicCalibrator(state[f"{t}.thresholds"], state[f"{t}.values"]) for t in tasks}
