"""Duration objectives: labels (and loss weights) of exposures from how long the item played.

A :class:`~funnelrec.rank.labels.TaskLabel` with a ``duration`` target is labelled from the
``play_duration`` / ``video_duration`` (seconds) of its events: the longest play of the
exposure's item by its user within the task's window (the window and attribution rule of
every label, :mod:`funnelrec.rank.label_match`). Kinds (:class:`DurationTarget`):

* ``complete``: the play reached ``completion_ratio`` of the video;
* ``skip``: the item was played for less than ``skip_s`` seconds (a swipe away) - a task whose
  probability a fusion formula weighs *against* an item;
* ``watch_time``: YouTube's weighted logistic regression (Covington et al. 2016): label 1 on
  a play (a skip counts as a negative with ``skip_negative``), loss weight = the play's
  seconds on positives and 1 on negatives, so the learned odds ``p / (1 - p)`` estimate the
  expected watch time of an exposure (:func:`expected_watch_time`);
* ``debiased``: a play longer than the ``quantile`` of plays of videos of similar length
  (``n_buckets`` equal-count buckets of ``video_duration``): watch time with the length of
  the video divided out (D2Q, Zhan et al. KDD 2022, regresses this quantile; binarised here so
  that the label stays a probability every metric and guard accepts).

Every target needs the two duration columns in the log; :func:`require_durations` names what
is missing otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.errors import ConfigError
from funnelrec.features.spec import RankFeatures
from funnelrec.rank.label_match import IndexedExposures, index_exposures, window_ranges

if TYPE_CHECKING:
    from funnelrec.rank.labels import TaskLabel

__all__ = [
    "DURATION_COLUMNS",
    "DurationTarget",
    "duration_targets",
    "expected_watch_time",
    "exposure_plays",
    "require_durations",
    "weight_column",
    "with_sample_weights",
]

DURATION_COLUMNS = ("play_duration", "video_duration")
WEIGHT_PREFIX = "weight_"


class DurationTarget(BaseModel):
    """How a duration task turns plays into a label (see the module docstring).

    Example:
        >>> DurationTarget(kind="complete").completion_ratio
        0.9
        >>> DurationTarget(kind="watch_time").weighted, DurationTarget(kind="skip").weighted
        (True, False)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["complete", "skip", "watch_time", "debiased"]
    completion_ratio: float = Field(
        0.9, gt=0, description="complete: share of the video a play must reach."
    )
    skip_s: float = Field(3.0, gt=0, description="A play shorter than this (s) is a skip.")
    skip_negative: bool = Field(
        True, description="watch_time: a skipped play is a negative (an explicit one)."
    )
    quantile: float = Field(
        0.5, gt=0, lt=1, description="debiased: the play-time quantile of the bucket to beat."
    )
    n_buckets: int = Field(10, ge=1, description="debiased: equal-count video-length buckets.")

    @property
    def weighted(self) -> bool:
        """Whether the task's samples carry a loss weight (``weight_<task>``)."""
        return self.kind == "watch_time"


def weight_column(task: str) -> str:
    """The Samples column holding a weighted task's per-sample loss weight.

    Example:
        >>> weight_column("watch_time")
        'weight_watch_time'
    """
    return f"{WEIGHT_PREFIX}{task}"


def require_durations(log: pl.DataFrame, tasks: Mapping[str, TaskLabel]) -> None:
    """Raise a :class:`~funnelrec.errors.ConfigError` when a duration task meets a log
    without ``play_duration`` / ``video_duration``.

    Example:
        >>> from funnelrec.rank.labels import TaskLabel
        >>> task = TaskLabel(events=("watch",), after=None, duration={"kind": "complete"})
        >>> require_durations(pl.DataFrame({"event": ["watch"]}), {"complete": task})
        Traceback (most recent call last):
        ...
        funnelrec.errors.ConfigError: duration task 'complete' needs the interactions' ...
    """
    missing = [c for c in DURATION_COLUMNS if c not in log.columns]
    for name, task in tasks.items():
        if task.duration is not None and missing:
            raise ConfigError(
                f"duration task {name!r} needs the interactions' {' and '.join(missing)} "
                "columns (seconds; KuaiRec/KuaiRand converters and the simulator with "
                "watch.enabled fill them); this log has none: drop the task or use "
                "click/like objectives"
            )


def duration_targets(
    ix: IndexedExposures | None,
    n: int,
    events: pl.DataFrame,
    tasks: Mapping[str, TaskLabel],
) -> tuple[dict[str, NDArray[np.float32]], dict[str, NDArray[np.float32]]]:
    """Labels and loss weights of the duration tasks among ``tasks``.

    Args:
        ix: the exposures indexed against ``events`` (None: nothing matches).
        n: number of exposures.
        events: ``[E]`` the log the exposures were indexed against.
        tasks: ``{task: TaskLabel}``; tasks without ``duration`` are skipped.

    Returns:
        ``({task: [N] float32 label in {0, 1}}, {task: [N] float32 weight})``, the weights
        for weighted targets (``watch_time``) only.
    """
    labels: dict[str, NDArray[np.float32]] = {}
    weights: dict[str, NDArray[np.float32]] = {}
    todo = {name: t for name, t in tasks.items() if t.duration is not None}
    if not todo:
        return labels, weights
    require_durations(events, todo)
    play_col = events["play_duration"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    video_col = events["video_duration"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    for name, task in todo.items():
        target = task.duration
        assert target is not None
        play, video = np.zeros(n), np.full(n, np.nan)
        if ix is not None:
            mask = events["event"].is_in(list(task.events)).to_numpy() & ~np.isnan(play_col)
            play, video = _longest_play(ix, mask, task.window_s, play_col, video_col, n)
        label, weight = _target(target, play, video)
        labels[name] = label.astype(np.float32)
        if weight is not None:
            weights[name] = weight.astype(np.float32)
    return labels, weights


def _longest_play(
    ix: IndexedExposures,
    mask: NDArray[np.bool_],
    window_s: float | None,
    play_col: NDArray[np.float64],
    video_col: NDArray[np.float64],
    n: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(play [N], video [N])``: each exposure's longest matching play (0 without one) and
    its video's length (NaN without one; every event of a pair is of the same video)."""
    chosen, lo, hi, hit = window_ranges(ix, mask, window_s)
    play, video = np.zeros(n), np.full(n, np.nan)
    rows = np.flatnonzero(hit)
    if rows.size == 0:
        return play, video
    # reduceat over interleaved [lo, hi) bounds: even results are the ranges' reductions
    # (ranges of hit rows are non-empty); a sentinel lets hi reach the end of the events.
    bounds = np.stack([lo[rows], hi[rows]], axis=1).ravel()
    values = np.append(play_col[chosen], 0.0)
    lengths = np.append(video_col[chosen], np.nan)
    play[rows] = np.maximum.reduceat(values, bounds)[::2]
    video[rows] = np.fmax.reduceat(lengths, bounds)[::2]
    return play, video


def _target(
    target: DurationTarget, play: NDArray[np.float64], video: NDArray[np.float64]
) -> tuple[NDArray[np.bool_], NDArray[np.float64] | None]:
    """``(label [N], weight [N] or None)`` of one target from the exposures' plays."""
    played = play > 0
    skipped = played & (play < target.skip_s)
    if target.kind == "complete":
        with np.errstate(invalid="ignore"):
            return played & (play >= target.completion_ratio * video), None
    if target.kind == "skip":
        return skipped, None
    if target.kind == "watch_time":
        label = played & ~(skipped & target.skip_negative)
        return label, np.where(label, play, 1.0)
    return played & _above_bucket_quantile(play, video, played, target), None


def _above_bucket_quantile(
    play: NDArray[np.float64],
    video: NDArray[np.float64],
    played: NDArray[np.bool_],
    target: DurationTarget,
) -> NDArray[np.bool_]:
    """``[N]`` plays whose length beats ``target.quantile`` of the plays in their
    video-length bucket (equal-count buckets over the played exposures' lengths)."""
    out = np.zeros(play.shape[0], dtype=bool)
    rows = np.flatnonzero(played & np.isfinite(video))
    if rows.size == 0:
        return out
    edges = np.quantile(video[rows], np.linspace(0, 1, target.n_buckets + 1)[1:-1])
    bucket = np.searchsorted(edges, video[rows], side="right")
    order = np.lexsort((play[rows], bucket))
    sizes = np.bincount(bucket, minlength=target.n_buckets)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(rows.size, dtype=np.float64)
    rank[order] = np.arange(rows.size) - np.repeat(starts, sizes)
    # Empirical CDF within the bucket: the share of its plays strictly shorter, ties averaged
    # by the stable order (a bucket of identical plays puts half above, half below).
    cdf = (rank + 0.5) / sizes[bucket]
    out[rows] = cdf > target.quantile
    return out


def expected_watch_time(p: NDArray[np.floating]) -> NDArray[np.float64]:
    """The expected watch time (s) a weighted-LR ``watch_time`` probability stands for: its
    odds ``p / (1 - p)``.

    Example:
        >>> expected_watch_time(np.array([0.5, 0.9])).round(3).tolist()
        [1.0, 9.0]
    """
    q = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0 - 1e-12)
    return q / (1.0 - q)


def with_sample_weights(x: RankFeatures, samples: pl.DataFrame) -> RankFeatures:
    """``x`` with the Samples' ``weight_<task>`` columns in its ``extra`` (rows aligned: the
    featurizer keeps the samples' order), where the training batches pick them up.

    Raises:
        ValueError: the samples and the features differ in length.
    """
    columns = [c for c in samples.columns if c.startswith(WEIGHT_PREFIX)]
    if not columns:
        return x
    if samples.height != len(x):
        raise ValueError(f"samples have {samples.height} rows, features {len(x)}")
    weights = {c: samples[c].to_numpy().astype(np.float32) for c in columns}
    return dataclasses.replace(x, extra={**x.extra, **weights})


def exposure_plays(
    exposures: pl.DataFrame,
    events: pl.DataFrame,
    task: TaskLabel,
    attribution: Literal["last", "all"] = "last",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each exposure's longest play of ``task``'s events in its window, and the video length:
    the raw seconds behind the duration labels (for watch-time metrics of test exposures).

    Args:
        exposures: ``[N]`` rows with ``user_idx``, ``item_idx``, ``timestamp``.
        events: the log with ``event``, ``play_duration`` and ``video_duration``.
        task: the events and window that count (e.g. ``DURATION_TASKS["watch_time"]``).
        attribution: as :func:`~funnelrec.rank.labels.label_exposures`.

    Returns:
        ``(play [N] seconds, 0 without a play; video [N] seconds, NaN without a play)``.
    """
    require_durations(events, {"plays": task.model_copy(update={"duration": _ANY_PLAY})})
    n = exposures.height
    ix = index_exposures(exposures, events, attribution)
    if ix is None:
        return np.zeros(n), np.full(n, np.nan)
    play_col = events["play_duration"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    video_col = events["video_duration"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    mask = events["event"].is_in(list(task.events)).to_numpy() & ~np.isnan(play_col)
    return _longest_play(ix, mask, task.window_s, play_col, video_col, n)


_ANY_PLAY = DurationTarget(kind="watch_time")  # marks a task as reading durations
