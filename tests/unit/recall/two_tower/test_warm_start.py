"""Warm start: a two-tower fit that begins from an earlier fit on a subset of its data.

The earlier data here is the start of the taste-group log without item 19 and without user
39's attribute value, so the two fits' vocabularies differ the way a fit before the ranking
window and the funnel's own fit do.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from funnelrec.data.dataset import Dataset
from funnelrec.recall.popular import Popular
from funnelrec.recall.two_tower import TwoTower
from funnelrec.recall.two_tower.warm_start import transfer

from .test_retriever import config, group_data, group_of, queries_for

LATE_ITEM = 19


def earlier_of(data: Dataset) -> Dataset:
    """The first three quarters of ``data``'s time span, item 19 and user 39 left out."""
    cut = int(np.quantile(data.interactions["timestamp"].to_numpy(), 0.75))
    inter = data.interactions.filter(
        (pl.col("timestamp") < cut) & (pl.col("item_id") != LATE_ITEM) & (pl.col("user_id") != 39)
    ).select("user_id", "item_id", "timestamp", "event", "value")
    assert data.items is not None and data.users is not None
    items = data.items.drop("item_idx").filter(pl.col("item_id") != LATE_ITEM)
    users = data.users.drop("user_idx").with_columns(
        pl.when(pl.col("user_id") < 5).then(pl.lit("x")).otherwise(pl.col("gender")).alias("gender")
    )
    return Dataset.build(inter, items, users)


@pytest.fixture(scope="module")
def fits() -> tuple[Dataset, Dataset, TwoTower]:
    data = group_data()
    earlier = earlier_of(data)
    return data, earlier, TwoTower(config()).fit(earlier, rng=np.random.default_rng(0))


def _item_rows(model: TwoTower, data: Dataset, ids: list[int]) -> torch.Tensor:
    rows = torch.from_numpy(data.item_vocab.encode(pl.Series(ids)).astype(np.int64))
    return model.model.item_tower.item_id.weight.detach()[rows]


def test_warm_fit_starts_from_the_earlier_rows_and_trains_the_warm_epochs(fits) -> None:
    data, _, first = fits
    warm = TwoTower(config(warm_start_epochs=2))
    assert warm.start_from(first)
    warm.fit(data, rng=np.random.default_rng(0))
    assert len(warm.train_result.epochs) == 2  # not train.epochs (8)
    # 19 of the 20 items plus the unknown-id row came from the earlier fit.
    assert warm.stats["warm_start_item_rows"] == 20
    result = warm.retrieve(queries_for(data, [0, 1, 30, 31]), k=2)
    groups = group_of(data, result.item_idx[:2].ravel())
    assert not groups.any() and group_of(data, result.item_idx[2:].ravel()).all()


def test_transfer_copies_shared_ids_by_id_and_leaves_new_ids_fresh(fits) -> None:
    data, earlier, first = fits
    target = TwoTower(config())
    # Transfer into a model fitted on the full data, so every tensor it keeps is non-trivial.
    target.fit(data, rng=np.random.default_rng(1))
    late_before = _item_rows(target, data, [LATE_ITEM]).clone()
    mlp_before = target.model.item_tower.mlp[0].weight.detach().clone()
    assert first._vocabularies is not None and target._vocabularies is not None
    moved = transfer(first.model, first._vocabularies, target.model, target._vocabularies)
    shared = [i for i in range(20) if i != LATE_ITEM]
    torch.testing.assert_close(_item_rows(target, data, shared), _item_rows(first, earlier, shared))
    torch.testing.assert_close(_item_rows(target, data, [LATE_ITEM]), late_before)
    torch.testing.assert_close(
        target.model.item_tower.mlp[0].weight, first.model.item_tower.mlp[0].weight
    )
    assert not torch.equal(target.model.item_tower.mlp[0].weight, mlp_before)
    assert moved.item_rows == 20 and not moved.fresh
    # Attribute values are matched by value: the earlier fit knows x, f and m (codes by sorted
    # value), the new one only f and m.
    old_attr = first.model.user_tower.attrs[0].weight.detach()
    new_attr = target.model.user_tower.attrs[0].weight.detach()
    old_codes = first._vocabularies.attributes.vocabs[0].encode(pl.Series(["f", "m"])) + 1
    new_codes = target._vocabularies.attributes.vocabs[0].encode(pl.Series(["f", "m"])) + 1
    torch.testing.assert_close(new_attr[new_codes.tolist()], old_attr[old_codes.tolist()])


def test_no_warm_start_from_another_channel_a_loaded_model_or_zero_epochs(fits) -> None:
    data, _, first = fits
    assert not TwoTower(config()).start_from(Popular().fit(data))
    assert not TwoTower(config(warm_start_epochs=0)).start_from(first)
    loaded = TwoTower.from_state(first.config, first.state())
    assert not TwoTower(config()).start_from(loaded)  # its vocabularies are not kept
    cold = TwoTower(config())
    cold.start_from(Popular().fit(data))
    cold.fit(data, rng=np.random.default_rng(0))
    assert len(cold.train_result.epochs) == 8 and "warm_start_item_rows" not in cold.stats
