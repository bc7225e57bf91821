"""Censored conversion labels: what a label window lets a training job see.

A task's :class:`~funnelrec.rank.labels.TaskLabel` ``window_s`` is the *attribution* window:
which later events count as the exposure's conversion at all. A *label window* is different:
how long after an exposure its label is read. A conversion that comes later than that (or
after the training data ends) is invisible at training time, so the exposure is a *fake
negative*: the label is censored. Both use the one matching rule of
:mod:`funnelrec.rank.label_match` (same pair, attribution, window), so a censored label is
the attribution-window label with the window shortened to the label window and the events
cut at the cutoff, and :func:`conversion_delays` reads the first credited event of the same
ranges.

The delayed-feedback methods (:mod:`funnelrec.rank.delay.methods`) need each exposure's
conversion delay (infinite when it never converts, as far as the data knows) and its elapsed
time (how long it had been observable when the labels were read).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.rank.label_match import index_exposures, window_ranges
from funnelrec.rank.labels import TaskLabel, label_exposures, require_columns

__all__ = ["censor_tasks", "conversion_delays", "observed_labels"]


def censor_tasks(
    tasks: Mapping[str, TaskLabel], label_window_s: float | None
) -> dict[str, TaskLabel]:
    """``tasks`` with every attribution window shortened to the label window (None: as is).

    Example:
        >>> t = {"order": TaskLabel(events=("order",), window_s=86400)}
        >>> censor_tasks(t, 3600)["order"].window_s
        3600.0
        >>> censor_tasks(t, None)["order"].window_s
        86400.0
    """
    if label_window_s is None:
        return dict(tasks)
    out = {}
    for name, task in tasks.items():
        window = label_window_s if task.window_s is None else min(task.window_s, label_window_s)
        out[name] = task.model_copy(update={"window_s": float(window)})
    return out


def observed_labels(
    exposures: pl.DataFrame,
    events: pl.DataFrame,
    tasks: Mapping[str, TaskLabel],
    *,
    cutoff: int,
    label_window_s: float | None,
) -> dict[str, NDArray[np.float32]]:
    """The labels a training job at ``cutoff`` sees with a label window (censored labels).

    An event counts when it falls in the task's attribution window, within ``label_window_s``
    of the exposure and at or before ``cutoff``.

    Args:
        exposures: ``[N]`` ``user_idx, item_idx, timestamp``.
        events: ``[E]`` ``user_idx, item_idx, timestamp, event`` (later ones are ignored).
        tasks: ``{task: TaskLabel}``.
        cutoff: the training time (unix s, inclusive).
        label_window_s: seconds after the exposure the label is read (None: no limit).

    Returns:
        ``{task: [N] float32 in {0, 1}}``.

    Example:
        >>> exp = pl.DataFrame({"user_idx": [0], "item_idx": [1], "timestamp": [0]})
        >>> ev = pl.DataFrame({"user_idx": [0], "item_idx": [1], "timestamp": [7200],
        ...     "event": ["order"]})
        >>> t = {"order": TaskLabel(events=("order",), window_s=None, after=None)}
        >>> [float(observed_labels(exp, ev, t, cutoff=c, label_window_s=w)["order"][0])
        ...  for c, w in ((9999, 3600), (9999, None), (3600, None))]
        [0.0, 1.0, 0.0]
    """
    visible = events.filter(pl.col("timestamp") <= cutoff)
    return label_exposures(exposures, visible, censor_tasks(tasks, label_window_s))


def conversion_delays(
    exposures: pl.DataFrame, events: pl.DataFrame, task: TaskLabel
) -> NDArray[np.float64]:
    """Seconds from each exposure to the first of ``task``'s events credited to it.

    The same rule as the task's label (attribution window, ``attribution="last"``): an
    exposure has a finite delay exactly where :func:`~funnelrec.rank.labels.label_exposures`
    labels it 1 (``after`` is not applied; pass post-click exposures for a post-click task).

    Returns:
        ``[N]`` float64 delays, ``inf`` where no event is credited.

    Example:
        >>> exp = pl.DataFrame({"user_idx": [0, 0], "item_idx": [1, 2], "timestamp": [10, 10]})
        >>> ev = pl.DataFrame({"user_idx": [0, 0], "item_idx": [2, 2], "timestamp": [70, 90],
        ...     "event": ["order", "order"]})
        >>> conversion_delays(exp, ev, TaskLabel(events=("order",), window_s=None)).tolist()
        [inf, 60.0]
    """
    require_columns(exposures, ("user_idx", "item_idx", "timestamp"), "exposures")
    require_columns(events, ("user_idx", "item_idx", "timestamp", "event"), "events")
    out = np.full(exposures.height, np.inf)
    ix = index_exposures(exposures, events, "last")
    if ix is None:
        return out
    mask = events["event"].is_in(list(task.events)).to_numpy()
    if not (mask & ix.e_keep).any():
        return out
    chosen, lo, _, hit = window_ranges(ix, mask, task.window_s)
    # Matching events are sorted by pair then time, so each range starts at the first one.
    first = ix.e_ts[chosen[lo[hit]]]
    out[hit] = first - (ix.rel[hit] + ix.t0)
    return out
