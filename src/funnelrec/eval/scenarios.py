"""Ranking metrics split by scenario (home feed, detail page, search, ...).

A model can win on the whole test set and lose on a small scenario that the big one hides;
:func:`by_scenario` repeats the rank-stage report (:func:`~funnelrec.metrics.rank.rank_report`)
on each scenario's samples when the samples carry more than one scenario.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl
from numpy.typing import ArrayLike

from funnelrec.arrays import unique_sorted
from funnelrec.features.scenario import SCENARIO_COLUMN
from funnelrec.metrics.rank import rank_report


def by_scenario(
    samples: pl.DataFrame,
    labels: Mapping[str, ArrayLike],
    probs: Mapping[str, ArrayLike],
    weights: ArrayLike | None = None,
) -> dict[str, dict]:
    """Per-scenario rank reports of ``samples`` (empty without two or more scenarios).

    Args:
        samples: ``[N]`` with ``query_id`` and, when split, ``scenario``; rows without a
            scenario form the ``"(none)"`` part.
        labels: task -> ``[N]`` labels, in ``samples`` order.
        probs: task -> ``[N]`` predictions, in ``samples`` order.
        weights: optional ``[N]`` sample weights (see ``rank_report``).

    Returns:
        scenario -> ``{"tasks": rank_report(...), "n_samples", "n_queries"}``, scenarios in
        sorted order.

    Example:
        >>> s = pl.DataFrame({"query_id": [0, 0, 1, 1], "scenario": ["a", "a", "b", "b"]})
        >>> out = by_scenario(s, {"click": [0, 1, 1, 0]}, {"click": [0.1, 0.9, 0.2, 0.8]})
        >>> {k: v["tasks"]["click"]["auc"] for k, v in out.items()}
        {'a': 1.0, 'b': 0.0}
    """
    if SCENARIO_COLUMN not in samples.columns:
        return {}
    scenario = samples[SCENARIO_COLUMN].cast(pl.String).fill_null("(none)")
    if scenario.n_unique() < 2:
        return {}
    names = scenario.to_numpy()
    group = samples["query_id"].to_numpy()
    w = None if weights is None else np.asarray(weights)
    out: dict[str, dict] = {}
    for name in sorted(scenario.unique().to_list()):
        rows = np.flatnonzero(names == name)
        out[name] = {
            "tasks": rank_report(
                {t: np.asarray(v)[rows] for t, v in labels.items()},
                {t: np.asarray(v)[rows] for t, v in probs.items()},
                group[rows],
                None if w is None else w[rows],
            ),
            "n_samples": int(rows.shape[0]),
            "n_queries": int(unique_sorted(group[rows]).shape[0]),
        }
    return out
