"""Popularity re-weighting of ranking samples: inverse popularity to the power beta, mean 1,
multiplied into existing task weights; beta 0 changes nothing."""

from __future__ import annotations

import numpy as np
import polars as pl

from funnelrec.rank.popularity_weights import item_popularity, popularity_weighted


def test_weights_fall_with_popularity_and_multiply_existing_weights() -> None:
    samples = pl.DataFrame(
        {"item_idx": [0, 1, 2, 7], "label_click": [1.0] * 4, "weight_watch": [2.0, 1, 1, 1]}
    )
    popularity = item_popularity(pl.DataFrame({"item_idx": [0, 0, 0, 1, -1]}), 3)
    assert popularity.tolist() == [3.0, 1.0, 0.0]
    out = popularity_weighted(samples, popularity, 1.0, ("click", "watch"))
    click = out["weight_click"].to_numpy()
    assert np.isclose(click.mean(), 1.0) and click[0] < click[1] < click[2] == click[3]
    np.testing.assert_allclose(out["weight_watch"].to_numpy(), click * [2, 1, 1, 1], rtol=1e-6)
    assert popularity_weighted(samples, popularity, 0.0, ("click",)).equals(samples)
