"""The ranker contract (see :mod:`funnelrec.testing`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from funnelrec.rank.behaviour_cache import projects_behaviours
from funnelrec.rank.ranker import Ranker

RankerFactory = Callable[[], Ranker]


def check_ranker(
    fitted: Ranker, refit: RankerFactory, samples: pl.DataFrame, log: pl.DataFrame
) -> None:
    """Run the ranker contract.

    Args:
        fitted: a fitted ranker.
        refit: fits a second ranker the same way (same data, same seed): determinism.
        samples: Samples to score (``query_id, user_idx, item_idx, timestamp``).
        log: the interaction log the features read.

    Raises:
        AssertionError: a clause of the contract is broken (the message names it).
    """
    scored = fitted.score(samples, log)
    assert scored.height == samples.height, f"{scored.height} scores for {samples.height} rows"
    for task in fitted.tasks:
        p = scored[f"p_{task}"].to_numpy()
        assert np.all(np.isfinite(p)), f"p_{task} has non-finite values"
        assert np.all((p >= 0) & (p <= 1)), f"p_{task} outside [0, 1]"
    assert np.all(np.isfinite(scored["score"].to_numpy())), "fused score has non-finite values"
    keys = ["query_id", "item_idx"]
    assert scored.select(keys).equals(samples.select(keys)), "rows reordered or changed"
    _check_one_request(fitted, samples, scored, log)
    again = refit().score(samples, log)
    assert np.allclose(again["score"].to_numpy(), scored["score"].to_numpy(), atol=1e-5), (
        "fit twice with the same seed gives different scores"
    )
    restored = Ranker.from_state(fitted.config, fitted.state())
    back = restored.score(samples, log)
    assert np.allclose(back["score"].to_numpy(), scored["score"].to_numpy(), atol=1e-6), (
        "save/load (state -> from_state) changes the scores"
    )
    empty = fitted.score(samples.clear(), log)
    assert empty.height == 0, "empty input must give zero rows"


def _check_one_request(
    fitted: Ranker, samples: pl.DataFrame, scored: pl.DataFrame, log: pl.DataFrame
) -> None:
    """The largest query's rows scored alone (a served request; twice, so that any per-user
    cache is read back) give the scores they had in the batch."""
    if samples.height == 0:
        return
    largest = samples["query_id"].value_counts(sort=True)["query_id"][0]
    mask = (samples["query_id"] == largest).to_numpy()
    expected = scored["score"].to_numpy()[mask]
    hits = fitted.behaviour_cache.hits
    for attempt in ("first", "repeated"):
        alone = fitted.score(samples.filter(mask), log)["score"].to_numpy()
        assert np.allclose(alone, expected, atol=1e-5), (
            f"one query's candidates scored alone ({attempt} request) differ from the batch"
        )
    if projects_behaviours(fitted.network) and mask.sum() > 1:
        assert fitted.behaviour_cache.hits > hits, "a repeated request missed the behaviour cache"
