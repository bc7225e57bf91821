"""The one rule for which events count as positive feedback.

An experiment's ``data.positive_events`` names the events that count; None (the default) means
every event but those in :data:`NON_POSITIVE_EVENTS`. Every component that needs the rule (the
Dataset's positives, the evaluation splits, point-in-time features, the serving request) asks
this module, so the rule cannot drift between training, evaluation and serving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.errors import DataError

NON_POSITIVE_EVENTS: tuple[str, ...] = ("impression",)
"""Events that never count as positives by default: an exposure is not feedback."""


def positive_expr(positive_events: tuple[str, ...] | None) -> pl.Expr:
    """Polars expression: does the row's ``event`` count as a positive?

    Args:
        positive_events: the events that count; None = every event but
            :data:`NON_POSITIVE_EVENTS`.

    Returns:
        A Boolean expression on column ``event`` (output name ``event``).

    Example:
        >>> df = pl.DataFrame({"event": ["impression", "click", "order"]})
        >>> df.select(positive_expr(None))["event"].to_list()
        [False, True, True]
        >>> df.select(positive_expr(("order",)))["event"].to_list()
        [False, False, True]
    """
    if positive_events is None:
        return ~pl.col("event").is_in(NON_POSITIVE_EVENTS)
    return pl.col("event").is_in(positive_events)


def is_positive(
    events: Sequence[str], positive_events: tuple[str, ...] | None
) -> NDArray[np.bool_]:
    """The rule of :func:`positive_expr` applied to a plain list of event names.

    Args:
        events: ``[n]`` event names.
        positive_events: the events that count; None = every event but
            :data:`NON_POSITIVE_EVENTS`.

    Returns:
        ``[n]`` bool, True where the event counts as a positive.

    Example:
        >>> is_positive(["impression", "click"], None).tolist()
        [False, True]
    """
    if positive_events is None:
        excluded = frozenset(NON_POSITIVE_EVENTS)
        return np.fromiter((e not in excluded for e in events), dtype=bool, count=len(events))
    chosen = frozenset(positive_events)
    return np.fromiter((e in chosen for e in events), dtype=bool, count=len(events))


def require_positives(
    interactions: pl.DataFrame, positive_events: tuple[str, ...] | None, what: str = "rows"
) -> None:
    """Refuse a log without a positive event: every stage learns from positives (and is scored
    on them), and each would fail its own, less clear way (EASE's solver, empty batches).

    Args:
        interactions: ``[n]`` rows with ``event``.
        positive_events: the events that count; None = every event but
            :data:`NON_POSITIVE_EVENTS`.
        what: the rows' name in the message (``"rows"``, ``"training rows"``).

    Raises:
        DataError: no row (or no positive row), naming the events found and the rule.
    """
    if interactions.height == 0:
        raise DataError(f"no {what} to learn from")
    if interactions.select(positive_expr(positive_events).any()).item():
        return
    found = ", ".join(repr(e) for e in sorted(interactions["event"].unique().to_list()))
    rule = (
        f"every event but {', '.join(NON_POSITIVE_EVENTS)}"
        if positive_events is None
        else ", ".join(positive_events)
    )
    raise DataError(
        f"no positive interaction to learn from: all {interactions.height} {what} are {found} "
        f"(positive events: {rule}; data.positive_events sets them)"
    )
