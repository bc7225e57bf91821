"""Multi-task labels of exposures: the tasks, and the one vectorised labeller.

A task's label for an exposure is 1 when the same user performs one of the task's events on
the same item within the task's window after the exposure (:class:`TaskLabel`). With
``attribution="last"`` (default) an event is credited to the *latest* exposure of the same
(user, item) at or before it; ``"all"`` credits every exposure whose window contains it.

Post-click tasks. A task declared to follow another (``TaskLabel.after``, ``"click"`` for every
known task but click itself) is labelled on the click-conditioned space: its label is 1 only
where the same exposure's label of the task it follows is 1 too, i.e. ``order := order AND
click`` (ESMM's click-through conversion, Ma et al. 2018). Logs hold conversions without a
click on the same exposure (on Taobao about half the orders have no click within the hour);
labelled independently they would break ESMM's ``pCTCVR = pCTR * pCVR`` and teach every
model that a conversion can happen without its click.

:func:`label_exposures` computes every label (sort + ``searchsorted`` on a combined
``pair << 32 | time`` key; no loop over rows). :mod:`funnelrec.rank.samples` builds the
exposures it labels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

from funnelrec.rank.duration import DURATION_COLUMNS, DurationTarget, duration_targets
from funnelrec.rank.label_match import IndexedExposures, index_exposures, window_ranges

__all__ = [
    "DAY_S",
    "DEFAULT_TASKS",
    "DURATION_TASKS",
    "HOUR_S",
    "IMPRESSION",
    "TASK_CATALOGUE",
    "TaskLabel",
    "duration_tasks_for",
    "label_and_weigh_exposures",
    "label_exposures",
    "require_columns",
    "task_parents",
    "tasks_for_events",
]

logger = logging.getLogger(__name__)

IMPRESSION = "impression"
HOUR_S = 3600.0
DAY_S = 86400.0


class TaskLabel(BaseModel):
    """One binary task: 1 when one of ``events`` follows the exposure within ``window_s``.

    The event must happen at ``t_sample <= ts <= t_sample + window_s`` (``None``: any time
    later in the given log, so a short window can be compared to a long one). A task with
    ``after`` is post-click: its label is 1 only where the label of the task named ``after`` is
    1 on the same exposure. ``after`` is ignored when it names the task itself or a task that
    is not being labelled (a lone ``order`` task stays unconditioned).

    Example:
        >>> TaskLabel(events=("order",), window_s=86400).window_s
        86400.0
        >>> TaskLabel(events=("order",)).after, TaskLabel(events=("like",), after=None).after
        ('click', None)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    events: tuple[str, ...] = Field(min_length=1, description="Events that make the label 1.")
    window_s: float | None = Field(
        HOUR_S, ge=0, description="Seconds after the exposure; None = the rest of the log."
    )
    after: str | None = Field(
        "click",
        min_length=1,
        description="The task this one follows: a positive counts only on exposures where that "
        "task is positive too (ESMM's click-through conversion). None, the task itself or a "
        "task not being labelled: unconditioned.",
    )
    duration: DurationTarget | None = Field(
        None,
        description="Label from the play / video duration of the task's events instead of "
        "their presence (completion, skip, watch time, duration-debiased: rank/duration.py).",
    )

    @field_validator("events")
    @classmethod
    def _no_impression(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        if IMPRESSION in events:
            raise ValueError("'impression' cannot make a label 1: every exposure is one")
        return events


DEFAULT_TASKS: dict[str, TaskLabel] = {
    "click": TaskLabel(events=("click",), window_s=HOUR_S, after=None),
    "cart": TaskLabel(events=("cart",), window_s=DAY_S, after="click"),
    "order": TaskLabel(events=("order",), window_s=DAY_S, after="click"),
}
"""Click within 1 h; cart and order within 24 h, counted only on a clicked exposure."""

# Every known task but click is an engagement with the item's page (the detail page, the
# playing video) that the click opens, so it is labelled on the click-conditioned space: the
# space ESMM's pCTCVR = pCTR * pCVR models, whatever the model.
TASK_CATALOGUE: dict[str, TaskLabel] = {
    "click": TaskLabel(events=("click",), window_s=HOUR_S, after=None),
    "like": TaskLabel(events=("like",), window_s=DAY_S, after="click"),
    "follow": TaskLabel(events=("follow",), window_s=DAY_S, after="click"),
    "comment": TaskLabel(events=("comment",), window_s=DAY_S, after="click"),
    "forward": TaskLabel(events=("forward",), window_s=DAY_S, after="click"),
    "fav": TaskLabel(events=("fav",), window_s=DAY_S, after="click"),
    "cart": TaskLabel(events=("cart",), window_s=DAY_S, after="click"),
    "order": TaskLabel(events=("order",), window_s=DAY_S, after="click"),
}
"""Known binary tasks in funnel order (the exposure-level task first, the others after it)."""

_PLAYS = ("click", "watch")  # the events a play's duration is logged on (simulator, Kuai*)
DURATION_TASKS: dict[str, TaskLabel] = {
    name: TaskLabel(events=_PLAYS, window_s=HOUR_S, after=None, duration=DurationTarget(kind=k))
    for name, k in (
        ("complete", "complete"),
        ("watch_time", "watch_time"),
        ("debiased_watch", "debiased"),
        ("skip", "skip"),
    )
}
"""Duration tasks (rank/duration.py), available on logs with ``play_duration`` and
``video_duration``; exposure-level (a play needs no click in a feed that autoplays)."""


def tasks_for_events(events_present: Iterable[str]) -> dict[str, TaskLabel]:
    """The default tasks a log supports, exposure-level task first.

    Known events (click, like, follow, comment, forward, fav, cart, order) get their
    :data:`TASK_CATALOGUE` task: every one but click follows click (``after="click"``), so
    with a click task they are labelled on the click-conditioned space. A log with none of them
    (ratings, watches) gets one unconditioned task ``"positive"`` over all its non-impression
    events, within 24 h.

    Args:
        events_present: event names in the log, e.g. ``log["event"].unique()``.

    Returns:
        Ordered ``{task: TaskLabel}`` for :class:`SampleConfig`.

    Example:
        >>> list(tasks_for_events(["impression", "order", "click", "fav"]))
        ['click', 'fav', 'order']
        >>> tasks_for_events(["rating"])["positive"].events
        ('rating',)
        >>> tasks_for_events(["click", "order"])["order"].after
        'click'
    """
    present = set(events_present)
    tasks = {name: task for name, task in TASK_CATALOGUE.items() if name in present}
    if tasks:
        return tasks
    others = tuple(sorted(present - {IMPRESSION}))
    if not others:
        raise ValueError("the log has no event besides 'impression': no task can be labelled")
    return {"positive": TaskLabel(events=others, window_s=DAY_S, after=None)}


def duration_tasks_for(log: pl.DataFrame) -> dict[str, TaskLabel]:
    """The :data:`DURATION_TASKS` a log supports: all of them when it has ``play_duration``
    and ``video_duration`` and a play event (click or watch) with a duration, else none.

    Example:
        >>> log = pl.DataFrame({"event": ["watch"], "play_duration": [3.0],
        ...     "video_duration": [9.0]})
        >>> list(duration_tasks_for(log))
        ['complete', 'watch_time', 'debiased_watch', 'skip']
        >>> duration_tasks_for(log.drop("play_duration"))
        {}
    """
    if any(c not in log.columns for c in (*DURATION_COLUMNS, "event")):
        return {}
    plays = log.filter(pl.col("event").is_in(_PLAYS) & pl.col("play_duration").is_not_null())
    return dict(DURATION_TASKS) if plays.height else {}


def require_columns(df: pl.DataFrame, columns: Iterable[str], table: str) -> None:
    """Raise ValueError naming the first of ``columns`` that ``table`` ``df`` lacks."""
    for col in columns:
        if col not in df.columns:
            raise ValueError(
                f"{table}: missing column '{col}' (found {', '.join(df.columns) or 'none'})"
            )


def _pair_codes(user: NDArray[np.integer], item: NDArray[np.integer]) -> NDArray[np.int64]:
    return (user.astype(np.int64) << 32) | item.astype(np.int64)


def label_exposures(
    exposures: pl.DataFrame,
    events: pl.DataFrame,
    tasks: Mapping[str, TaskLabel],
    attribution: Literal["last", "all"] = "last",
) -> dict[str, NDArray[np.float32]]:
    """Labels of exposures from later events of the same (user, item): the one labeller.

    Args:
        exposures: ``[N]`` rows with ``user_idx``, ``item_idx``, ``timestamp``. All exposures
            take part in attribution (label before subsampling negatives).
        events: ``[E]`` rows with ``user_idx``, ``item_idx``, ``timestamp``, ``event``.
        tasks: ``{task: TaskLabel}``.
        attribution: ``"last"`` credits an event only to the latest exposure of its pair at or
            before it; ``"all"`` to every exposure whose window holds it.

    Returns:
        ``{task: [N] float32 in {0, 1}}``. Rows with a negative user/item index never match.
        A task whose ``after`` names another of ``tasks`` is 1 only where that task is 1 too
        (so no post-click positive without its click).

    Raises:
        ValueError: the ``after`` links of ``tasks`` form a cycle, or the timestamps span more
            than 2**32 s.

    Example:
        >>> exp = pl.DataFrame({"user_idx": [0, 0], "item_idx": [1, 2], "timestamp": [10, 10]})
        >>> ev = pl.DataFrame({"user_idx": [0], "item_idx": [2], "timestamp": [70],
        ...     "event": ["click"]})
        >>> label_exposures(exp, ev, {"click": TaskLabel(events=("click",), window_s=60)})
        {'click': array([0., 1.], dtype=float32)}
    """
    return label_and_weigh_exposures(exposures, events, tasks, attribution)[0]


def label_and_weigh_exposures(
    exposures: pl.DataFrame,
    events: pl.DataFrame,
    tasks: Mapping[str, TaskLabel],
    attribution: Literal["last", "all"] = "last",
) -> tuple[dict[str, NDArray[np.float32]], dict[str, NDArray[np.float32]]]:
    """:func:`label_exposures` plus the per-sample loss weights of weighted duration tasks
    (``watch_time``: the play's seconds on positives, 1 on negatives; rank/duration.py).

    Returns:
        ``(labels {task: [N]}, weights {task: [N]})``, weights for weighted tasks only.

    Raises:
        ValueError: as :func:`label_exposures`.
        ConfigError: a duration task on events without ``play_duration``/``video_duration``.
    """
    require_columns(exposures, ("user_idx", "item_idx", "timestamp"), "exposures")
    require_columns(events, ("user_idx", "item_idx", "timestamp", "event"), "events")
    parents = task_parents(tasks)  # validates the links before the (costly) labelling
    ix = index_exposures(exposures, events, attribution)
    durations, weights = duration_targets(ix, exposures.height, events, tasks)
    raw = _raw_labels(ix, exposures.height, events, tasks)
    raw = {name: durations.get(name, raw[name]) for name in tasks}
    labels = _condition_on_parents(raw, parents)
    # A weighted task labelled after another keeps weight 1 where conditioning zeroed it.
    weights = {t: np.where(labels[t] > 0, w, 1.0).astype(np.float32) for t, w in weights.items()}
    return labels, weights


def _raw_labels(
    ix: IndexedExposures | None, n: int, events: pl.DataFrame, tasks: Mapping[str, TaskLabel]
) -> dict[str, NDArray[np.float32]]:
    """Every event task's label from its own events and window alone (``after`` not
    applied); duration tasks stay 0 here."""
    out = {name: np.zeros(n, dtype=np.float32) for name in tasks}
    _warn_absent_events(events, tasks)
    if ix is None:
        return out
    for name, task in tasks.items():
        mask = events["event"].is_in(list(task.events)).to_numpy()
        if task.duration is not None or not (mask & ix.e_keep).any():
            continue
        out[name] = window_ranges(ix, mask, task.window_s)[3].astype(np.float32)
    return out


def _parent(name: str, task: TaskLabel, tasks: Mapping[str, TaskLabel]) -> str | None:
    """The task ``name`` is conditioned on: its ``after`` when that is another of ``tasks``."""
    after = task.after
    return after if after is not None and after != name and after in tasks else None


def task_parents(tasks: Mapping[str, TaskLabel]) -> dict[str, str | None]:
    """``{task: the task it is labelled after, or None}``, every parent before its children.

    ``after`` counts only when it names another of ``tasks`` (chains are allowed).

    Raises:
        ValueError: the ``after`` links form a cycle (no task could be labelled first).

    Example:
        >>> task_parents(tasks_for_events(["order", "click"]))
        {'click': None, 'order': 'click'}
        >>> task_parents({"order": TaskLabel(events=("order",))})  # no click task: unconditioned
        {'order': None}
    """
    ordered: dict[str, str | None] = {}
    for name in tasks:
        chain: list[str] = []
        node: str | None = name
        while node is not None and node not in ordered:
            if node in chain:
                cycle = " -> ".join([*chain[chain.index(node) :], node])
                raise ValueError(f"tasks follow each other in a cycle: {cycle}")
            chain.append(node)
            node = _parent(node, tasks[node], tasks)
        for child in reversed(chain):
            ordered[child] = _parent(child, tasks[child], tasks)
    return ordered


def _condition_on_parents(
    raw: dict[str, NDArray[np.float32]], parents: Mapping[str, str | None]
) -> dict[str, NDArray[np.float32]]:
    """``label_t := raw_t AND label_parent(t)``, parents first (:func:`task_parents`), logging
    the positives each condition drops.

    Returns:
        The labels in ``raw``'s task order.
    """
    out = dict(raw)
    for name, parent in parents.items():
        if parent is None:
            continue
        child = raw[name]
        out[name] = child * out[parent]
        dropped = int(child.sum() - out[name].sum())
        if dropped:
            # Informative, not a problem: the log's conversions without a click on the same
            # exposure (Taobao: about half) are not post-click positives.
            logger.info(
                "task %r: %d of %d positives have no %r on the same exposure and are labelled 0 "
                "(labels after %r: click-through conversion)",
                name,
                dropped,
                int(child.sum()),
                parent,
                parent,
            )
    return {name: out[name] for name in raw}


def _warn_absent_events(events: pl.DataFrame, tasks: Mapping[str, TaskLabel]) -> None:
    """Warn for every task none of whose events occur in ``events`` (its labels are all 0)."""
    present = set(events["event"].unique().to_list()) if events.height else set()
    for name, task in tasks.items():
        if not present.intersection(task.events):
            logger.warning(
                "task %r: none of its events %s occur in the log; its labels are all 0",
                name,
                list(task.events),
            )
