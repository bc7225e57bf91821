"""Tower shapes, padding/unknown conventions, deterministic init, example construction."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from funnelrec.data.dataset import Dataset
from funnelrec.recall.two_tower.config import TowerConfig
from funnelrec.recall.two_tower.data import (
    BatchInputs,
    ItemFeatureEncoder,
    assemble_batch,
    build_examples,
    last_items,
)
from funnelrec.recall.two_tower.model import TowerSizes, TwoTowerModel, init_parameters

SIZES = TowerSizes(n_items=30, n_categories=4, attr_cardinalities=(3, 5), content_dim=6)


def make_model(pooling: str = "mean", seed: int = 0) -> TwoTowerModel:
    cfg = TowerConfig(dim=8, embed_dim=16, hidden=(12,), history_len=5, pooling=pooling)
    model = TwoTowerModel(cfg, SIZES)
    init_parameters(model, torch.Generator().manual_seed(seed))
    return model


def batch(b: int = 4, u: int = 3, h: int = 2, m: int = 7) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    hist = torch.randint(0, SIZES.n_items, (b, 5), generator=g)
    hist[0] = SIZES.pad_id  # an empty history
    hist[1, :3] = SIZES.pad_id
    return {
        "user_attr": torch.zeros(b, 2, dtype=torch.long),
        "hist_item": hist,
        "hist_category": torch.randint(0, 5, (b, 5), generator=g),
        "cand_id": torch.randint(0, SIZES.n_items + 1, (m,), generator=g),
        "cand_category": torch.randint(0, 5, (m,), generator=g),
        "cand_time": torch.randint(0, 17, (m,), generator=g),
        "cand_content": torch.randn(m, 6, generator=g),
        "pos": torch.arange(b),
        "uniform": torch.randint(0, m, (u,), generator=g),
        "hard": torch.randint(0, m, (b, h), generator=g),
    }


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_forward_shapes_and_unit_vectors(pooling: str) -> None:
    out = make_model(pooling)(batch())
    assert out["in_batch"].shape == (4, 4)
    assert out["uniform"].shape == (4, 3)
    assert out["hard"].shape == (4, 2)
    assert out["user"].shape == (4, 8) and out["candidates"].shape == (7, 8)
    assert torch.allclose(out["user"].norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(out["candidates"].norm(dim=1), torch.ones(7), atol=1e-5)
    assert torch.isfinite(out["in_batch"]).all()  # empty history: no NaN
    # Logits are cosines over the temperature.
    assert float(out["in_batch"].detach().abs().max()) <= 1 / 0.05 + 1e-3


def test_padding_is_ignored_and_init_is_deterministic() -> None:
    model = make_model()
    pad = model.user_tower.history_id.weight[SIZES.pad_id]
    assert torch.equal(pad, torch.zeros_like(pad))
    hist = torch.tensor([[SIZES.pad_id, SIZES.pad_id, 3, 4, 5]])
    cats = torch.tensor([[0, 0, 1, 2, 3]])
    attrs = torch.zeros(1, 2, dtype=torch.long)
    shifted = torch.tensor([[3, 4, 5, SIZES.pad_id, SIZES.pad_id]])
    shifted_cats = torch.tensor([[1, 2, 3, 0, 0]])
    # Mean pooling: where the padding sits does not matter.
    assert torch.allclose(model.user(attrs, hist, cats), model.user(attrs, shifted, shifted_cats))
    again = make_model()
    for (name, a), (_, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    other = make_model(seed=1)
    assert not torch.equal(other.item_tower.item_id.weight, model.item_tower.item_id.weight)


def test_item_tower_without_content_and_unknown_id_row() -> None:
    sizes = TowerSizes(5, 1, (), 0)
    model = TwoTowerModel(TowerConfig(dim=4, embed_dim=4, hidden=()), sizes)
    ids = torch.tensor([0, sizes.unknown_id])
    v = model.item(
        ids, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(2, 0)
    )
    assert v.shape == (2, 4)
    assert model.item_tower.item_id.num_embeddings == sizes.n_items + 1


def tiny_dataset() -> Dataset:
    inter = pl.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 2, 1],
            "item_id": [10, 11, 12, 10, 11, 13, 14],
            "timestamp": [1, 2, 2, 5, 3, 4, 6],
            "event": ["click", "click", "click", "click", "click", "click", "impression"],
            "value": [1.0] * 7,
        }
    )
    items = pl.DataFrame(
        {
            "item_id": [10, 11, 12, 13, 14],
            "category": ["a", "a", "b", "b", None],
            "created_at": [0, 10, 20, 30, 40],
        }
    )
    return Dataset.build(inter, items)


def test_examples_use_history_strictly_before_the_positive() -> None:
    data = tiny_dataset()
    ex = build_examples(data, "clicks", dedupe=False)
    idx = data.item_vocab.encode(pl.Series([10, 11, 12, 13])).tolist()
    hist = last_items(ex.seq_item, ex.hist_start, ex.hist_end, 4, -1)
    rows = {
        (int(u), int(i), tuple(h[h >= 0].tolist()))
        for u, i, h in zip(ex.user, ex.item, hist, strict=True)
    }
    u1, u2 = data.user_vocab.encode(pl.Series([1, 2])).tolist()
    a, b, c, d = idx
    assert rows == {
        (u1, a, ()),
        (u1, b, (a,)),
        (u1, c, (a,)),  # 11 and 12 share a timestamp: neither is before the other
        (u1, a, (a, b, c)),
        (u2, b, ()),
        (u2, d, (b,)),
    }
    deduped = build_examples(data, "clicks", dedupe=True)
    assert len(deduped) == 5  # the repeat of item 10 is dropped
    exposures = build_examples(data, "exposures", dedupe=True)
    assert len(exposures) == 6  # the impression of 14 becomes a target
    assert int(data.item_vocab.encode(pl.Series([14]))[0]) in exposures.item.tolist()


def test_item_features_and_batch_assembly() -> None:
    data = tiny_dataset()
    encoder, feats = ItemFeatureEncoder.fit(data, n_buckets=4, text=None)
    assert feats.category.tolist() == [1, 1, 2, 2, 0]
    assert feats.time.min() >= 1 and feats.time.max() <= 4
    assert np.all(np.diff(feats.time) >= 0)
    new = encoder.encode(pl.DataFrame({"item_id": [99], "category": ["b"], "created_at": [999]}))
    assert new.category.tolist() == [2] and new.time.tolist() == [feats.time.max()]
    unknown = encoder.encode(pl.DataFrame({"item_id": [98], "category": ["zzz"]}))
    assert unknown.category.tolist() == [0] and unknown.time.tolist() == [0]
    ex = build_examples(data, "clicks", dedupe=True)
    sizes = TowerSizes(data.n_items, 2, data.user_attr_encoder.cardinalities, 0)
    inputs = BatchInputs(ex, data.user_attr, feats, sizes, np.zeros(5, np.float32), 3, 0.0)
    rows = np.array([0, 1, 2])
    hard = np.array([[4], [-1], [0]])
    out = assemble_batch(inputs, rows, np.array([3, 3]), hard, np.random.default_rng(0))
    cand = out["cand_id"].numpy()
    assert np.array_equal(cand[out["pos"].numpy()], ex.item[rows])
    assert cand[out["uniform"].numpy()].tolist() == [3, 3]
    assert cand[out["hard"].numpy()[0, 0]] == 4
    assert out["hard_item"].tolist() == [[4], [-1], [0]]
    assert out["hist_item"].shape == (3, 3)
    assert (out["hist_item"][0] == sizes.pad_id).all()  # the first example has no history
